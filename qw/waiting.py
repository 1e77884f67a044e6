"""Waiting for jobs to settle, blocked in Redis: ``h.result()``, ``add.call()``, ``qw.wait()``.

A waiter looks at the record and counts itself in it (``watch-1.lua``) in
one step, then blocks on ``all:settled:<id>`` (BLPOP), where the script that
settles the job pushes one token per counted waiter. So a job that settles
before the wait starts answers at once, one that settles during it wakes
the waiter at once, any number of waiters wake, and a job nobody waits on
pays nothing. A lost connection during the wait is retried until the
timeout; a record that does not exist raises :class:`JobNotFound` at once.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import redis

from .connection import translated
from .exceptions import JobNotFound
from .keeping import SETTLED
from .store import Store, text

# Longest single BLPOP: a waiter with no timeout still looks at the record
# this often (a job settled by an older qw, which pushes no token, is seen).
LONGEST_BLOCK = 5.0
RECONNECT_PAUSE = 0.05


def watch(store: Store, job_id: str, register: bool) -> str:
    """The job's state now; with ``register``, a job not settled counts this waiter."""
    reply = store.scripts.watch(keys=[store.keys.job(job_id)], args=["1" if register else "0"])
    if reply == 0:
        raise JobNotFound(f"no such job: {job_id}")
    return text(reply)


def wait_settled(store: Store, job_ids: Sequence[str], timeout: Optional[float]) -> dict[str, str]:
    """Block until every job has settled; their states by id.

    Raises :class:`TimeoutError` naming what has not settled after
    ``timeout`` seconds (None: wait as long as it takes), and
    :class:`JobNotFound` for an id with no record.
    """
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    states: dict[str, str] = {}
    pending = list(dict.fromkeys(job_ids))
    register = True
    while True:
        try:
            pending = _look(store, pending, states, register)
            if not pending:
                return states
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            block = LONGEST_BLOCK if left is None else min(left, LONGEST_BLOCK)
            popped = store.redis.blpop([store.keys.settled(i) for i in pending], timeout=max(block, 0.001))
            # Whatever woke us (or not), look again; count ourselves again
            # only after taking a token, whose push cleared the count.
            register = popped is not None
        except redis.AuthenticationError:
            with translated(store.config):
                raise
        except (redis.ConnectionError, redis.TimeoutError):
            if deadline is not None and time.monotonic() >= deadline:
                with translated(store.config):
                    raise
            time.sleep(RECONNECT_PAUSE)
            register = True
    first = pending[0]
    state = states.get(first) or watch(store, first, False)
    more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
    raise TimeoutError(f"job {first}{more} not finished after {timeout:g} s (state: {state})")


def _look(store: Store, pending: list[str], states: dict[str, str], register: bool) -> list[str]:
    """Watch every pending job in one round trip; the ones still pending."""
    pipe = store.redis.pipeline(transaction=False)
    for job_id in pending:
        store.scripts.watch(keys=[store.keys.job(job_id)], args=["1" if register else "0"], client=pipe)
    still = []
    for job_id, reply in zip(pending, pipe.execute()):
        if reply == 0:
            raise JobNotFound(f"no such job: {job_id}")
        state = text(reply)
        states[job_id] = state
        if state not in SETTLED:
            still.append(job_id)
    return still
