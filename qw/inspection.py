"""Reading what is in Redis: managers, workers, queues, jobs, health, info and stats.

Plain functions over a :class:`~qw.store.Store`, behind the ``get_*``
methods of :class:`~qw.client.Client`; none of them changes anything.
Names and ids come back as ``str``; queues list the next job to run first.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import job as jobcodec
from . import stats
from .connection import translated
from .store import Store, text


def get_all_managers(store: Store) -> list[str]:
    """Names of registered managers, sorted."""
    return sorted(_members(store, store.keys.all_managers))


def get_orphaned_managers(store: Store) -> list[str]:
    """Departed managers whose own queue still holds jobs, sorted."""
    return sorted(_members(store, store.keys.all_orphaned))


def get_manager_holder(store: Store, manager: str) -> Optional[str]:
    """Who holds ``manager``'s lease, or None if it lapsed."""
    with translated(store.config):
        holder = store.redis.get(store.keys.manager_heartbeat(manager))
    return text(holder) if holder is not None else None


def get_manager_workers(store: Store, manager: str) -> list[str]:
    """Worker names of ``manager``, in slot order (``box:2`` before ``box:10``)."""
    return sorted(_members(store, store.keys.manager_workers(manager)), key=_natural)


def get_worker_pending_jobs(store: Store, worker: str) -> list[str]:
    """Ids in ``worker``'s in-progress list, the one it runs (or runs next) first."""
    return _queue(store, store.keys.worker_jobs(worker))


def get_manager_queued_jobs(store: Store, manager: str) -> list[str]:
    """Ids waiting in ``<manager>:jobs``, next to run first."""
    return _queue(store, store.keys.manager_jobs(manager))


def get_all_queued_jobs(store: Store) -> list[str]:
    """Ids waiting in ``all:jobs``, next to run first."""
    return _queue(store, store.keys.all_jobs)


def get_all_pending_jobs(store: Store) -> dict[str, list[str]]:
    """In-progress ids of every registered worker, by worker name."""
    pending = {}
    for manager in get_all_managers(store):
        for worker in get_manager_workers(store, manager):
            pending[worker] = get_worker_pending_jobs(store, worker)
    return pending


def get_scheduled_jobs(store: Store) -> list[tuple[str, float]]:
    """Jobs waiting for a retry, as ``(job_id, due_at)`` (unix seconds), soonest first."""
    with translated(store.config):
        entries = store.redis.zrange(store.keys.all_scheduled, 0, -1, withscores=True)
    return [(text(job_id), float(due)) for job_id, due in entries]


def get_job(store: Store, job_id: str) -> Optional[dict[str, Any]]:
    """The data of a job still stored (queued, in progress or failed), else None."""
    with translated(store.config):
        raw = store.redis.hgetall(store.keys.job(job_id))
    return jobcodec.decode(raw)[0] if raw else None


def get_manager_health(store: Store, manager: str) -> dict[str, dict[str, Any]]:
    """What ``manager`` last published about each worker, by worker name."""
    with translated(store.config):
        raw = store.redis.hgetall(store.keys.manager_health(manager))
    return {text(k): json.loads(v) for k, v in raw.items()}


def get_manager_info(store: Store, manager: str) -> dict[str, Any]:
    """``<manager>:info``, each field decoded from JSON where it is JSON; {} if none."""
    with translated(store.config):
        raw = store.redis.hgetall(store.keys.manager_info(manager))
    return decode_info(raw)


def decode_info(raw: dict[Any, Any]) -> dict[str, Any]:
    """A ``<manager>:info`` hash as Redis returned it, each field decoded from JSON where it is JSON."""
    info: dict[str, Any] = {}
    for field, value in raw.items():
        value_text = text(value)
        try:
            info[text(field)] = json.loads(value_text)
        except ValueError:
            info[text(field)] = value_text
    return info


def get_stats(store: Store, manager: Optional[str] = None, *, task: Optional[str] = None,
              queue: Optional[str] = None) -> dict[str, Any]:
    """:func:`qw.stats.report` of ``manager``, ``task`` or named ``queue`` (or of all) over the history
    its manager keeps.

    For all, a task or a queue, the history is that of the first live
    manager (by name), else the default. A task or a queue with a manager,
    or both, is a :class:`~qw.exceptions.ConfigError`: those figures are
    kept over all managers, one kind at a time.
    """
    scope = stats.Scope(manager=manager, task=task, queue=queue)
    info = get_manager_info(store, manager) if manager else next(
        (i for i in (get_manager_info(store, m) for m in get_all_managers(store)) if i), {})
    history = (float(info.get("history_hours", stats.DEFAULT_HISTORY[0])),
               int(info.get("history_days", stats.DEFAULT_HISTORY[1])))
    with translated(store.config):
        return stats.report(store.redis, store.keys, scope, history)


def _members(store: Store, key: str) -> list[str]:
    with translated(store.config):
        return [text(m) for m in store.redis.smembers(key)]


def _queue(store: Store, key: str) -> list[str]:
    # Workers take from the right end: reverse, so the next to run is first;
    # the queue's prioritised jobs go before (below 0) and after (above 0).
    with translated(store.config):
        pipe = store.redis.pipeline(transaction=False)
        pipe.lrange(key, 0, -1)
        pipe.zrange(priority_set(key), 0, -1, withscores=True)
        ids, prioritised = pipe.execute()
    plain = [text(i) for i in reversed(ids) if not is_marker(i)]
    sooner = [member_id(m) for m, score in prioritised if score < 0]
    later = [member_id(m) for m, score in prioritised if score > 0]
    return sooner + plain + later


#: What sits at the head of a queue's list while its priority set holds jobs (lib/priority.lua).
MARKER = b"\0qw:prio:"


def is_marker(item: bytes | str) -> bool:
    """True for a queue's priority marker, which is no job."""
    return (item if isinstance(item, bytes) else item.encode()).startswith(MARKER)


def priority_set(queue_key: str) -> str:
    """``<list>:prio``, the queue's prioritised jobs."""
    return f"{queue_key}:prio"


def member_id(member: bytes | str) -> str:
    """The job id of a priority set's member, ``<16-digit sequence>:<id>``."""
    return text(member)[17:]


def _natural(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition(":")
    return (head, int(tail)) if tail.isdigit() else (name, -1)
