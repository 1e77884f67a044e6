"""What managers and workers do for themselves: registration, and the seed API's claim and ack.

Registration adds and removes names in ``all:managers`` and
``<manager>:workers``. ``fetch_next_job`` and ``finish_job`` serve code
that runs a worker loop of its own through the Client, one
:class:`~qw.claim.Claimer` per call (``qw.Worker`` keeps its own Claimer).
"""

from __future__ import annotations

import time
from typing import Any, Optional

from .claim import Claimer
from .connection import translated
from .keys import validate_manager_name
from .store import Store

WAIT_SLICE = 0.05  # seconds: the longest single wait on all:jobs while fetching


def register_manager(store: Store, name: str) -> None:
    """Add ``name`` (checked) to ``all:managers``."""
    with translated(store.config):
        store.redis.sadd(store.keys.all_managers, validate_manager_name(name))


def deregister_manager(store: Store, name: str) -> None:
    """Remove ``name`` from ``all:managers``."""
    with translated(store.config):
        store.redis.srem(store.keys.all_managers, name)


def register_worker(store: Store, manager: str, worker: str) -> None:
    """Add ``worker`` to ``<manager>:workers``."""
    with translated(store.config):
        store.redis.sadd(store.keys.manager_workers(manager), worker)


def deregister_worker(store: Store, manager: str, worker: str) -> None:
    """Remove ``worker`` from ``<manager>:workers``."""
    with translated(store.config):
        store.redis.srem(store.keys.manager_workers(manager), worker)


def fetch_next_job(
    store: Store, manager: str, worker: str, timeout: float
) -> Optional[tuple[str, dict[str, Any]]]:
    """Claim the next job for ``worker`` of ``manager`` within ``timeout`` seconds, else None."""
    claimer = Claimer(store.redis, store.scripts, store.keys, manager, worker)
    deadline = time.monotonic() + timeout
    moved = ""
    with translated(store.config):
        while True:
            job = claimer.claim(moved=moved)
            if job is not None:
                return job.id, job.data
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # Short slices, so a job queued to this manager meanwhile is seen.
            moved = claimer.wait(min(left, WAIT_SLICE))


def finish_job(store: Store, job_id: str, worker_name: str) -> bool:
    """Acknowledge ``job_id`` in ``worker_name``'s list; False when it was not there."""
    claimer = Claimer(store.redis, store.scripts, store.keys, "", worker_name)
    with translated(store.config):
        return claimer.ack_id(job_id)
