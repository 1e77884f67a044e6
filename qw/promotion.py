"""Moving due jobs (delayed jobs and retries) from ``all:scheduled`` to their queues.

One call of ``promote_due-2.lua`` moves at most ``limit`` due jobs in one
atomic step, on Redis's clock, and says when the next one is due; the
scheduler duty (:mod:`qw.duties.scheduler`) sleeps until then. Any number
of managers may promote at once: each job moves once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import redis

from .connection import unblock
from .keys import Keys
from .scripts import Scripts

#: Jobs one promotion moves at most: a script never walks an unbounded range.
BATCH = 500


@dataclass(frozen=True)
class Promotion:
    """What one promotion did: jobs moved, the next due time and Redis's clock (unix seconds),
    and the client ids of idle workers to wake (CLIENT UNBLOCK)."""

    moved: int
    next_due: Optional[float]
    now: float
    wake: tuple[int, ...]
    next_recurring: Optional[float] = None  # the earliest due time of a recurring schedule

    @property
    def more(self) -> bool:
        """True when due jobs are left (the batch was full, or the next one is due already)."""
        return self.next_due is not None and self.next_due <= self.now


def promote(call: Callable[..., Any], scripts: Scripts, keys: Keys, limit: int = BATCH) -> Promotion:
    """Run one promotion through ``call(script, keys, args)`` (a :class:`~qw.scripts.DirectCaller`,
    or :func:`on` a redis-py client)."""
    reply = call(scripts.promote_due, [keys.all_scheduled, keys.all_jobs, keys.all_recurring],
                 [keys.job_prefix, keys.namespace, int(limit)])
    moved, next_due, now, recurring, *wake = reply
    return Promotion(int(moved), float(next_due) if next_due else None, float(now),
                     tuple(dict.fromkeys(int(w) for w in wake)), float(recurring) if recurring else None)


def on(client: redis.Redis) -> Callable[..., Any]:
    """A ``call`` for :func:`promote` that runs the script through redis-py's ``client``."""
    return lambda script, keys, args: script(keys=keys, args=args, client=client)


def wake(client: redis.Redis, client_ids: tuple[int, ...], key: str) -> None:
    """Unblock idle workers that were given jobs (an ACL user without CLIENT: they poll anyway);
    ``key`` is any key of the namespace (on a cluster, it names the server)."""
    unblock(client, client_ids, key)
