"""What a queue call asks qw to keep of its job: a record, for how long, its tags, tracking.

A job that keeps a record (every task job, and a plain job given any of
these options) carries ``qw:history`` from the moment it is queued; the
scripts fill it in (``qw/lua/lib/record.lua``). Its fields come first in
the hash's field list, ``qw:history`` then ``qw:tags``, where the enqueue
scripts look for them. See docs/records.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Optional

from .exceptions import ConfigError

HISTORY_FIELD = "qw:history"
TAGS_FIELD = "qw:tags"
RESULT_TTL_FIELD = "qw:result_ttl"
TRACKED_FIELD = "qw:tracked"
KEEP_FIELD = "qw:keep"
RESULT_FIELD = "qw:result"
STATE_FIELD = "qw:state"

#: How long a task job's record stays after it settles, unless the task, the
#: call or ``qw-manager --result-ttl`` says otherwise.
DEFAULT_RESULT_TTL = 600
#: Results larger than this (JSON bytes) fail their job: ``--max-result-size``.
DEFAULT_MAX_RESULT_SIZE = 1_000_000

STATES = ("queued", "scheduled", "waiting", "running", "retrying", "done", "failed", "cancelled")
SETTLED = frozenset({"done", "failed", "cancelled"})

# A tag goes in a key name (all:tag:<tag>): no whitespace, no glob characters.
_TAG = re.compile(r"[^\s*?\[\]]{1,100}")


def check_result_ttl(value: Any, what: str = "result_ttl") -> Optional[int]:
    """None, or a whole number of seconds of at least 0 (0: the record goes when the job is done)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{what} must be a whole number of seconds, got {value!r}")
    if value < 0:
        raise ConfigError(f"{what} must be at least 0, got {value}")
    return int(value)


def check_tags(tags: Optional[Iterable[str]]) -> tuple[str, ...]:
    """The tags as a tuple, each a string of 1 to 100 characters without whitespace or ``*?[]``."""
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise ConfigError(f"tags must be a list of strings, not the string {tags!r}")
    checked = []
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise ConfigError(f"tag {tag!r} must be 1 to 100 characters, without whitespace or '*?[]'")
        if tag not in checked:
            checked.append(tag)
    return tuple(checked)


#: Priorities qw takes: lower runs sooner, 0 is the default (a score must
#: stay an exact integer in a Redis sorted set).
PRIORITY_RANGE = (-(2**31), 2**31)

def check_priority(value: Any) -> int:
    """``value`` if it is a whole number within :data:`PRIORITY_RANGE`, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"priority must be a whole number, got {value!r}")
    low, high = PRIORITY_RANGE
    if not low <= value <= high:
        raise ConfigError(f"priority must be between {low:,} and {high:,}, got {value:,}")
    return value



ON_FAILURE = ("fail", "run")


def dependency_ids(depends_on: Optional[Iterable[Any]]) -> tuple[str, ...]:
    """The ids of ``depends_on`` (handles or ids), in order, each once; () for none."""
    if depends_on is None:
        return ()
    if isinstance(depends_on, (str, bytes)) or hasattr(depends_on, "id"):
        depends_on = [depends_on]
    ids: list[str] = []
    for item in depends_on:
        job_id = getattr(item, "id", item)
        if not isinstance(job_id, str) or not job_id:
            raise ConfigError(f"depends_on takes job handles or ids, got {item!r}")
        if job_id not in ids:
            ids.append(job_id)
    return tuple(ids)


def check_on_failure(value: str) -> str:
    if value not in ON_FAILURE:
        raise ConfigError(f"on_dependency_failure must be 'fail' or 'run', got {value!r}")
    return value


def check_state(state: str) -> str:
    """``state`` if it names a job state, else a ConfigError listing them."""
    if state not in STATES:
        raise ConfigError(f"unknown state {state!r}; one of: {', '.join(STATES)}")
    return state


def record_fields(result_ttl: Optional[int], tags: tuple[str, ...], track: bool, *,
                  task: bool, waiter: bool = False) -> dict[str, str]:
    """The fields that ask for a record, in the order the enqueue scripts read them; {} for none.

    A task job keeps one unless ``result_ttl`` is 0; a plain job only when
    asked (a ``result_ttl`` above 0, tags or tracking; with tags or tracking
    alone it stays :data:`DEFAULT_RESULT_TTL` seconds once settled).
    """
    keeps = bool(tags) or track or (result_ttl is None and task) or bool(result_ttl)
    fields: dict[str, str] = {}
    if keeps:
        fields[HISTORY_FIELD] = ""  # the enqueue script writes the "queued" event here
        if tags:
            fields[TAGS_FIELD] = json.dumps(list(tags), ensure_ascii=False)
        if track:
            fields[TRACKED_FIELD] = "1"
        if result_ttl is None and not task:
            result_ttl = DEFAULT_RESULT_TTL
    if result_ttl is not None:
        fields[RESULT_TTL_FIELD] = str(result_ttl)
    if waiter:  # the caller waits for it from the start (Task.call): counted at queue time
        fields["qw:waiters"] = "1"
    if keeps or waiter or (result_ttl or 0) > 0:
        # What the acknowledgement reads to know it must keep something;
        # without it the job's hash is deleted as a plain job's is.
        fields[KEEP_FIELD] = "1"
    return fields
