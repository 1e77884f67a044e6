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
from .scripts import NOT_WAITED, evalsha_each
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


def first_block(timeout: Optional[float]) -> float:
    """Seconds of the first BLPOP of a wait of ``timeout`` seconds (None: no limit)."""
    return LONGEST_BLOCK if timeout is None else max(0.001, min(timeout, LONGEST_BLOCK))


def wait_settled(store: Store, job_ids: Sequence[str], timeout: Optional[float],
                 registered: bool = False, popped: object = NOT_WAITED,
                 began: Optional[float] = None) -> dict[str, Settled]:
    """Block until every job has settled; how each did, by id.

    ``registered``: the jobs were queued with this waiter counted already
    (``Task.call``), so the first look is skipped; ``popped``: the reply of
    a first BLPOP already made (sent with the queuing call), if any, and
    ``began`` when the wait began (``time.monotonic()``; None: now). Raises
    :class:`TimeoutError` naming what has not settled after ``timeout``
    seconds (None: wait as long as it takes), and :class:`JobNotFound` for
    an id with no record.
    """
    deadline = None if timeout is None else (began or time.monotonic()) + max(0.0, timeout)
    settled: dict[str, Settled] = {}
    states: dict[str, str] = {}
    pending = list(dict.fromkeys(job_ids))
    look, register = not registered, True
    blocked = popped is not NOT_WAITED
    while True:
        try:
            if not blocked:
                if look:
                    pending = _look(store, pending, states, settled, register)
                if not pending:
                    return settled
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                block = LONGEST_BLOCK if left is None else min(left, LONGEST_BLOCK)
                popped = store.redis.blpop([store.keys.settled(i) for i in pending],
                                           timeout=max(block, 0.001))
            blocked = False
            look, register = True, False
            if popped is not None:
                job_id, how = _from_token(store, popped)
                if how is not None and job_id in pending:
                    # The token says how it settled: no look needed for this one.
                    settled[job_id] = how
                    pending.remove(job_id)
                    look = False
                # else: an old-style token, or none: look again (the count was cleared by the push)
                register = how is None
        except redis.AuthenticationError:
            with translated(store.config):
                raise
        except (redis.ConnectionError, redis.TimeoutError):
            if deadline is not None and time.monotonic() >= deadline:
                with translated(store.config):
                    raise
            time.sleep(RECONNECT_PAUSE)
            look, register = True, True
    first = pending[0]
    state = states.get(first) or watch(store, first, False)
    more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
    raise TimeoutError(f"job {first}{more} not finished after {timeout:g} s (state: {state})")


class Settled:
    """How a job settled, as its waiter learnt it: ``state``, and ``result`` (JSON text) when the
    token carried it (None: read the record)."""

    __slots__ = ("state", "result")

    def __init__(self, state: str, result: Optional[str] = None) -> None:
        self.state, self.result = state, result


def _from_token(store: Store, popped: Sequence[bytes]) -> tuple[str, Optional[Settled]]:
    key, token = text(popped[0]), text(popped[1])
    job_id = key[len(store.keys.settled("")):]
    state, sep, result = token.partition("\n")
    if not sep or state not in SETTLED:
        return job_id, None
    return job_id, Settled(state, result if state == "done" and result else None)


def _look(store: Store, pending: list[str], states: dict[str, str], settled: dict[str, Settled],
          register: bool) -> list[str]:
    """Watch every pending job in one round trip; the ones still pending."""
    flag = "1" if register else "0"
    if len(pending) == 1:  # a plain EVALSHA: a pipeline of scripts checks them first (SCRIPT EXISTS)
        replies = [store.scripts.watch(keys=[store.keys.job(pending[0])], args=[flag])]
    else:
        replies = _watch_many(store, pending, flag)
    still = []
    for job_id, reply in zip(pending, replies):
        if reply == 0:
            raise JobNotFound(f"no such job: {job_id}")
        state = text(reply)
        states[job_id] = state
        if state in SETTLED:
            settled[job_id] = Settled(state)
        else:
            still.append(job_id)
    return still


def _watch_many(store: Store, pending: list[str], flag: str) -> list[object]:
    script = store.scripts.watch
    for attempt in (1, 2):
        calls = [([store.keys.job(job_id)], [flag]) for job_id in pending]
        replies = evalsha_each(store.redis, script, calls)
        if attempt == 1 and any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
            store.redis.script_load(script.script)  # Redis lost its scripts: load and look again
            continue
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
    return []  # pragma: no cover - the loop returns
