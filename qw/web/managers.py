"""Managers and their workers as the dashboard shows them, read in three pipelined round trips.

What ``qw-client info`` shows, without its table of tasks (which reads
up to thousands of ids per queue): per manager its lease, what it
publishes in ``<manager>:info`` and ``<manager>:health``, its own queue's
depth; per worker its in-progress list's length and rightmost id (the job
it runs).
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from ..client import Client
from ..inspection import decode_info
from ..store import text

# As qw-client workers: seconds without a good Redis call, outside its job, before a worker looks stuck.
UNHEALTHY_AFTER = 10.0


def managers(client: Client) -> list[dict[str, Any]]:
    """Every registered manager with its workers, sorted by name."""
    keys = client.keys
    names = sorted(text(n) for n in client.redis.smembers(keys.all_managers))
    pipe = client.redis.pipeline(transaction=False)
    for name in names:
        pipe.get(keys.manager_heartbeat(name))
        pipe.hgetall(keys.manager_info(name))
        pipe.smembers(keys.manager_workers(name))
        pipe.hgetall(keys.manager_health(name))
        pipe.llen(keys.manager_jobs(name))
    replies = pipe.execute()
    now = time.time()
    rows = []
    for i, name in enumerate(names):
        holder, raw_info, workers, raw_health, queued = replies[5 * i: 5 * i + 5]
        info = decode_info(raw_info)
        rows.append({
            "name": name, "alive": holder is not None, "holder": text(holder) if holder else None,
            "info": info, "pid": info.get("pid"), "host": info.get("host"), "version": info.get("version"),
            "target": info.get("target"), "tasks": [t for t in info.get("tasks") or () if isinstance(t, str)],
            "queues": [q for q in info.get("queues") or () if isinstance(q, str)],
            "workers_wanted": info.get("workers"), "running": info.get("running"),
            "leaving": info.get("leaving"), "paused": bool(info.get("paused")),
            "up_for": now - started if (started := _number(info.get("started"))) is not None else None,
            "queued": int(queued),
            "workers": _workers(sorted((text(w) for w in workers), key=_natural), _health(raw_health)),
        })
    _fill_lists(client, [w for m in rows for w in m["workers"]])
    return rows


def _health(raw: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    health = {}
    for field, value in raw.items():
        try:
            seen = json.loads(value)
        except ValueError:
            continue
        if isinstance(seen, dict):
            health[text(field)] = seen
    return health


def _workers(names: list[str], health: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        seen = health.get(name, {})
        busy_for = _number(seen.get("busy_for"))
        since = _number(seen.get("since_last_claim"))
        # Time in its current job does not count: a busy worker does not talk to Redis until it ends.
        silent = None if since is None else max(0.0, since - (busy_for or 0.0))
        rows.append({"name": name, "pid": seen.get("pid"), "busy_for": busy_for, "since_last_claim": since,
                     "healthy": None if silent is None else silent < UNHEALTHY_AFTER,
                     "silent_for": silent, "job": None, "held": 0})
    return rows


def _fill_lists(client: Client, workers: list[dict[str, Any]]) -> None:
    """Each worker's in-progress list: its length and, when it is busy, the job it runs (the right end)."""
    if not workers:
        return
    pipe = client.redis.pipeline(transaction=False)
    for worker in workers:
        key = client.keys.worker_jobs(worker["name"])
        pipe.llen(key)
        pipe.lindex(key, -1)
    replies = pipe.execute()
    for i, worker in enumerate(workers):
        worker["held"] = int(replies[2 * i])
        running = replies[2 * i + 1]
        if worker["busy_for"] is not None and running is not None:
            worker["job"] = text(running)


def _number(value: Any) -> Optional[float]:
    """A number a manager published, or None (what another program wrote there is not trusted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _natural(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition(":")
    return (head, int(tail)) if tail.isdigit() else (name, -1)
