"""Taking work back from workers and managers that are gone.

Managers call these; each move of a job is one atomic script, so recovery
racing a manager that comes back, or two managers recovering at once, can
neither lose a job nor put it in two places.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Optional, Sequence

from .claim import requeue_worker
from .client import Client
from .process import cancel_digest
from .store import text

log = logging.getLogger("qw.recovery")


def requeue(client: Client, manager: str, worker: str, *, keep_own: bool, cause: str = "",
            max_attempts: int = 1, only_if_lease_gone: bool = False,
            started: Optional[Sequence[str]] = None) -> int:
    """:func:`qw.claim.requeue_worker` with a :class:`Client`."""
    return requeue_worker(client.redis, client.scripts, client.keys, manager, worker, keep_own=keep_own,
                          cause=cause, max_attempts=max_attempts, only_if_lease_gone=only_if_lease_gone,
                          started=started)


def requeue_dead_worker(client: Client, manager: str, process: Any, *, keep_own: bool, cause: str,
                        max_attempts: int) -> int:
    """Requeue the jobs of a worker process of ours that died: with a prefetch, only the job it had
    started (its shared memory says which) is charged ``cause``; those it held get their attempt back."""
    started = None
    if cause and getattr(process, "prefetch", 1) != 1:
        started = started_jobs(client, process.name, process.shared.running.value)
    return requeue(client, manager, process.name, keep_own=keep_own, cause=cause, max_attempts=max_attempts,
                   started=started)


def started_jobs(client: Client, worker: str, digest: int) -> list[str]:
    """The ids in ``worker``'s list that ``digest`` (``Shared.running``) names: the job it ran."""
    if not digest:
        return []
    ids = client.redis.lrange(client.keys.worker_jobs(worker), 0, -1)
    return [i for i in (text(raw) for raw in ids) if cancel_digest(i) == digest]


def reap_departed(client: Client, me: str, lock_ms: int, max_attempts: int) -> list[str]:
    """Recover every manager whose lease ran out; return their names.

    Only one manager reaps at a time (an expiring lock). The jobs the dead
    manager's workers were running go back to the head of their queues,
    using an attempt each; jobs queued to the dead manager itself stay in its
    queue, listed in ``all:orphaned``, until a manager of that name returns.
    """
    keys = client.keys
    token = f"{me} {uuid.uuid4().hex[:8]}"
    if not client.redis.set(keys.all_reaper, token, nx=True, px=lock_ms):
        return []
    try:
        return _reap(client, me, max_attempts)
    finally:
        client.scripts.release_lock(keys=[keys.all_reaper], args=[token])


def _reap(client: Client, me: str, max_attempts: int) -> list[str]:
    keys = client.keys
    reaped = []
    for manager in client.get_all_managers():
        if manager == me or client.redis.exists(keys.manager_heartbeat(manager)):
            continue
        moved = 0
        for worker in client.get_manager_workers(manager):
            n = requeue(client, manager, worker, keep_own=False, max_attempts=max_attempts,
                        cause=f"its manager {manager} stopped renewing its lease (host or process gone)",
                        only_if_lease_gone=True)
            if n < 0:
                break  # it came back
            moved += n
        else:
            forgotten = client.scripts.forget_manager(
                keys=[keys.manager_heartbeat(manager), keys.all_managers, keys.manager_workers(manager),
                      keys.manager_jobs(manager), keys.all_orphaned],
                args=[manager],
            )
            if forgotten:
                client.redis.delete(keys.manager_idle(manager), keys.manager_health(manager),
                                    keys.manager_info(manager), keys.manager_control(manager))
                reaped.append(manager)
                log.warning("manager %s: lease of manager %s expired; requeued %d job(s) of its workers",
                            me, manager, moved)
    return reaped
