"""Query and form parameters, checked: a bad one is a :class:`BadRequest` (a 400 with a message).

Numbers out of range are clamped rather than refused, so an edited URL
still shows something sensible; text that is not a number, an unknown
choice or an over-long string is refused.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from ..exceptions import ConfigError
from ..keys import validate_manager_name, validate_queue_name

PAGE_SIZE = 50
PAGE_SIZE_MAX = 200
PAGE_MAX = 10_000
POLL_DEFAULT = 5
POLL_MIN, POLL_MAX = 1, 60
TEXT_MAX = 200
SELECTION_MAX = 500  # ids one form may name


class BadRequest(Exception):
    """A parameter that cannot be used; the message says which and why."""


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """``name`` as an integer clamped to ``low..high``; ``default`` when absent or empty."""
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw[:40]!r}") from None
    return max(low, min(high, value))


def page(query: Mapping[str, str]) -> tuple[int, int]:
    """``(page, size)``: the 1-based page number and jobs per page, clamped."""
    return (integer(query, "page", 1, 1, PAGE_MAX),
            integer(query, "size", PAGE_SIZE, 1, PAGE_SIZE_MAX))


def poll(query: Mapping[str, str]) -> int:
    """Seconds between refreshes: 0 (off) or clamped to ``POLL_MIN..POLL_MAX``."""
    seconds = integer(query, "poll", POLL_DEFAULT, 0, POLL_MAX)
    return seconds if seconds == 0 else max(POLL_MIN, seconds)


def text(query: Mapping[str, str], name: str, limit: int = TEXT_MAX) -> str:
    """``name`` stripped, at most ``limit`` characters; "" when absent."""
    value = query.get(name, "").strip()
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def choice(query: Mapping[str, str], name: str, options: Sequence[str]) -> str:
    """``name`` if it is one of ``options`` ("" when absent), else :class:`BadRequest`."""
    value = query.get(name, "")
    if value and value not in options:
        raise BadRequest(f"{name} must be one of {', '.join(options)}, got {value[:40]!r}")
    return value


def manager_name(name: str) -> str:
    """A manager name from a URL or form, checked as qw checks it."""
    try:
        return validate_manager_name(name)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None


def queue_name(name: str) -> str:
    """A queue name from a URL, checked as qw checks it."""
    try:
        return validate_queue_name(name)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None


def job_ids(values: Sequence[str]) -> list[str]:
    """The job ids a form names: at most :data:`SELECTION_MAX`, each non-empty and short."""
    ids = [v.strip() for v in values if v.strip()]
    if len(ids) > SELECTION_MAX:
        raise BadRequest(f"at most {SELECTION_MAX} jobs at a time, got {len(ids)}")
    if any(len(i) > TEXT_MAX for i in ids):
        raise BadRequest(f"a job id is longer than {TEXT_MAX} characters")
    return ids


def optional_text(query: Mapping[str, str], name: str) -> Optional[str]:
    """:func:`text`, None when empty."""
    return text(query, name) or None
