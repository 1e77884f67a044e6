"""Move delayed jobs and retries to their queues the moment they are due, and fire recurring schedules.

The duty sleeps in the supervising loop's one ``wait()`` until the earliest
due time it last read (``every`` is the time left until then, at most
:data:`CAP`), so a due job reaches its queue within a millisecond or two
of its due time; a job scheduled sooner than that earliest one pushes a
token on ``all:scheduled:wake``, where this duty keeps a BLPOP in flight
(its socket joins the same ``wait()``). The same promotion returns the
earliest due time of the recurring schedules (``all:recurring``), which
fire through :func:`qw.recurring.fire_due`. An idle manager sends one
promotion a second and one BLPOP every :data:`BLOCK` seconds.

It runs in the loop rather than a thread of its own: the manager forks its
workers, and forks them while single-threaded. Every manager runs it; a
promotion is one atomic script over a bounded batch, so a job moves once
however many managers promote at the same instant.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import redis

from .. import promotion
from ..client import Client
from ..connection import raw_connection
from ..scripts import DirectCaller
from . import Duty

log = logging.getLogger("qw.manager")

CAP = 1.0  # seconds: the earliest due time is read again at least this often
BLOCK = 5  # seconds one BLPOP on the wake list waits before it is sent again
ROUNDS = 20  # batches per run; a larger backlog is finished on the next turns of the loop


class PromoteDue(Duty):
    """Promotes due jobs from ``all:scheduled``: on time, in batches, woken early when needed."""

    name = "scheduler"

    def __init__(self, client: Client, manager: str) -> None:
        self.client = client
        self.manager = manager
        self.keys = client.keys
        self._caller = DirectCaller(client.redis, self.keys.all_jobs)
        self._waiter = raw_connection(client.redis, self.keys.all_jobs)
        self._sent_at: Optional[float] = None
        self._fd = -1
        self._next_try = 0.0
        self._next_run = 0.0  # monotonic time the next promotion is due

    @property
    def every(self) -> Optional[float]:
        """Seconds until the earliest due job (read again after each run and each wake)."""
        return max(0.0, self._next_run - time.monotonic())

    def run(self) -> None:
        self._next_run = time.monotonic() + CAP  # if Redis does not answer: try again then
        moved = 0
        for _ in range(ROUNDS):
            sent = time.monotonic()
            done = promotion.promote(self._caller, self.client.scripts, self.keys)
            received = time.monotonic()
            promotion.wake(self.client.redis, done.wake, self.keys.all_jobs)
            moved += done.moved
            recurring = done.next_recurring is not None and done.next_recurring <= done.now
            if recurring:
                self.client.fire_recurring(done.now)
            if not (done.more or recurring):
                break
        else:
            self._next_run = time.monotonic()  # a backlog: the other duties get their turn first
            return
        upcoming = [t for t in (done.next_due, done.next_recurring) if t is not None]
        if upcoming:
            # Redis's clock ran the script between sending and receiving: take the middle.
            left = min(upcoming) - done.now
            self._next_run = min((sent + received) / 2 + left, received + CAP)
        if moved >= promotion.BATCH:
            log.info("manager %s: %d due job(s) queued", self.manager, moved)

    # -- the wake list: a BLPOP kept in flight --------------------------------------

    def fileno(self) -> Optional[int]:
        if self._sent_at is not None:
            if time.monotonic() - self._sent_at < BLOCK + 5:
                return self._fd
            self._drop()  # no answer long past the BLPOP's own timeout: a dead connection
        if time.monotonic() < self._next_try:
            return None
        try:
            self._waiter.send_command("BLPOP", self.keys.all_scheduled_wake, BLOCK)
            self._fd = self._waiter._sock.fileno()
        except (redis.RedisError, OSError, AttributeError):
            self._drop()
            return None
        self._sent_at = time.monotonic()
        return self._fd

    def on_readable(self) -> None:
        self._sent_at = None
        try:
            token = self._waiter.read_response()
        except (redis.RedisError, OSError):
            self._drop()
            return
        if token is not None:
            self._next_run = time.monotonic()  # something is due sooner than we thought: read now

    def _drop(self) -> None:
        self._next_try = time.monotonic() + 1.0
        self._sent_at = None
        self._fd = -1
        self._waiter.disconnect()

    def close(self) -> None:
        self._drop()
        self._caller.close()
