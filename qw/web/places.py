"""Where job ids wait: the shared queue, named queues, managers' queues, workers' lists.

A :class:`Place` names one such list and reads it a page at a time
(LRANGE on the slice shown, never the whole list). Workers take from the
right end, so a page lists the next job to run first; a queue's prioritised
jobs (``<list>:prio``) are counted and listed in the order the claim takes
them, and the marker that stands for them in the list is no job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..client import Client
from ..exceptions import ConfigError
from ..inspection import is_marker, member_id, priority_set
from ..keys import SHARED_QUEUE, validate_queue_name
from ..store import text

KINDS = ("shared", "named", "manager", "worker")


@dataclass(frozen=True)
class Place:
    """One list of job ids: ``kind`` is one of :data:`KINDS`; ``name`` the queue, manager or worker."""

    kind: str
    name: str = ""

    def key(self, client: Client) -> str:
        keys = client.keys
        if self.kind == "shared":
            return keys.all_jobs
        if self.kind == "named":
            return keys.named_queue(self.name)
        if self.kind == "manager":
            return keys.manager_jobs(self.name)
        return keys.worker_jobs(self.name)

    @property
    def label(self) -> str:
        return {"shared": "all:jobs", "named": f"all:queue:{self.name}", "manager": f"{self.name}:jobs",
                "worker": f"{self.name}:jobs"}[self.kind]

    @property
    def path(self) -> str:
        """Its page under the dashboard's root."""
        return "/queues/shared" if self.kind == "shared" else f"/queues/{self.kind}/{self.name}"


def named(name: str) -> Place:
    """The place of queue ``name`` (``all`` is the shared queue)."""
    return Place("shared") if name == SHARED_QUEUE else Place("named", name)


def _counts(client: Client, places: list[Place]) -> list[tuple[int, int, int, bool]]:
    """Per place: (jobs sooner by priority, plain jobs, jobs later by priority, a marker at its end)."""
    pipe = client.redis.pipeline(transaction=False)
    for place in places:
        key = place.key(client)
        pipe.llen(key)
        pipe.lindex(key, -1)
        pipe.zcard(priority_set(key))
        pipe.zcount(priority_set(key), "-inf", "(0")
    replies = pipe.execute() if places else []
    counts = []
    for i in range(len(places)):
        length, last, prioritised, sooner = replies[4 * i: 4 * i + 4]
        marked = last is not None and is_marker(last)
        counts.append((int(sooner), int(length) - marked, int(prioritised) - int(sooner), marked))
    return counts


def depths(client: Client, places: Iterable[Place]) -> list[dict[str, Any]]:
    """Each place's depth (prioritised jobs included) and the age of its oldest plain job (the next
    of them to run), in two round trips."""
    places = list(places)
    counts = _counts(client, places)
    pipe = client.redis.pipeline(transaction=False)
    for place, (_sooner, _plain, _later, marked) in zip(places, counts):
        pipe.lindex(place.key(client), -2 if marked else -1)
    oldest = pipe.execute() if places else []
    pipe = client.redis.pipeline(transaction=False)
    for job_id in oldest:
        if job_id is not None:
            pipe.hget(client.keys.job(text(job_id)), "qw:queued_at")
    stamps = iter(pipe.execute() if any(o is not None for o in oldest) else [])
    rows = []
    for place, (sooner, plain, later, _marked), job_id in zip(places, counts, oldest):
        queued_at = next(stamps) if job_id is not None else None
        rows.append({"place": place, "depth": sooner + plain + later, "prioritised": sooner + later,
                     "oldest_id": text(job_id) if job_id is not None else None,
                     "oldest_at": _float(queued_at)})
    return rows


def page_ids(client: Client, place: Place, page: int, size: int) -> tuple[list[str], int]:
    """Ids on page ``page`` (1-based) of ``place`` in the order they run, and its depth.

    The order is the claim's: prioritised jobs below 0 (lowest first), the
    plain list (first in, first out), then those above 0. Each part is read
    by index, the page only.
    """
    key, prio = place.key(client), priority_set(place.key(client))
    sooner, plain, later, marked = _counts(client, [place])[0]
    start, end = (page - 1) * size, page * size
    pipe = client.redis.pipeline(transaction=False)
    parts = []
    if start < sooner:
        pipe.zrange(prio, start, min(end, sooner) - 1)
        parts.append("prio")
    low, high = max(start, sooner) - sooner, min(end, sooner + plain) - sooner  # plain positions, next first
    if low < high:
        skip = 1 if marked else 0
        pipe.lrange(key, -(high + skip), -(low + 1 + skip))
        parts.append("list")
    low, high = max(start, sooner + plain) - sooner - plain, min(end, sooner + plain + later) - sooner - plain
    if low < high:
        pipe.zrange(prio, sooner + low, sooner + high - 1)
        parts.append("prio")
    ids: list[str] = []
    for part, items in zip(parts, pipe.execute() if parts else []):
        if part == "prio":
            ids += [member_id(m) for m in items]
        else:
            ids += [text(i) for i in reversed(items) if not is_marker(i)]
    return ids, sooner + plain + later


def served_queues(infos: Iterable[dict[str, Any]]) -> list[str]:
    """Named queues (not ``all``) that some manager's info says it serves, sorted."""
    found = set()
    for info in infos:
        for name in info.get("queues") or ():
            if isinstance(name, str) and name != SHARED_QUEUE and valid_queue(name):
                found.add(name)
    return sorted(found)


def valid_queue(name: str) -> Optional[str]:
    """``name`` if it may name a queue, else None (a manager's info is not trusted blindly)."""
    try:
        return validate_queue_name(name)
    except ConfigError:
        return None


def _float(value: Any) -> Optional[float]:
    try:
        return float(value) if value else None
    except ValueError:
        return None
