"""Where job ids wait: the shared queue, named queues, managers' queues, workers' lists.

A :class:`Place` names one such list and reads it a page at a time
(LRANGE on the slice shown, never the whole list). Workers take from the
right end, so a page lists the next job to run first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..client import Client
from ..exceptions import ConfigError
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


def depths(client: Client, places: Iterable[Place]) -> list[dict[str, Any]]:
    """Each place's depth and the age of its oldest job (the next to run), in one round trip."""
    places = list(places)
    pipe = client.redis.pipeline(transaction=False)
    for place in places:
        pipe.llen(place.key(client))
        pipe.lindex(place.key(client), -1)
    replies = pipe.execute()
    oldest = [replies[2 * i + 1] for i in range(len(places))]
    pipe = client.redis.pipeline(transaction=False)
    for job_id in oldest:
        if job_id is not None:
            pipe.hget(client.keys.job(text(job_id)), "qw:queued_at")
    stamps = iter(pipe.execute() if any(o is not None for o in oldest) else [])
    rows = []
    for i, place in enumerate(places):
        queued_at = next(stamps) if oldest[i] is not None else None
        rows.append({"place": place, "depth": int(replies[2 * i]),
                     "oldest_id": text(oldest[i]) if oldest[i] is not None else None,
                     "oldest_at": float(queued_at) if queued_at else None})
    return rows


def page_ids(client: Client, place: Place, page: int, size: int) -> tuple[list[str], int]:
    """Ids on page ``page`` (1-based) of ``place``, next to run first, and its depth."""
    key = place.key(client)
    start = (page - 1) * size
    pipe = client.redis.pipeline(transaction=False)
    pipe.llen(key)
    pipe.lrange(key, -(start + size), -(start + 1))
    depth, ids = pipe.execute()
    if start >= depth:
        return [], int(depth)
    return [text(i) for i in reversed(ids)], int(depth)


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
