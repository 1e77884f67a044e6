"""A manager's stop: let the workers finish (or interrupt them), requeue what is left, release the name.

1. Signal the workers: SIGTERM (graceful: no new claims, the running job
   finishes) or SIGINT (urgent: the job is interrupted and requeued).
2. Wait for them up to ``graceful_timeout`` (urgent: ``URGENT_GRACE``),
   renewing the lease meanwhile; a worker dying meanwhile gets its jobs
   back in their queues at once.
3. SIGKILL any still alive, add up their last counts.
4. Requeue what is left in their lists (a stop gives the attempt back), then
   release the name, or for a re-exec hand it over.
"""

from __future__ import annotations

import logging
import time
from multiprocessing.connection import wait

from . import recovery
from .client import Client
from .connection import TRANSIENT
from .guard import Guard
from .keeper import Keeper
from .lease import NameLease, Renewal
from .lifecycle import Lifecycle
from .options import Settings
from .pool import Pool, Slot
from .process import describe_exit

log = logging.getLogger("qw.manager")

URGENT_GRACE = 2.0  # after INT, how long workers get to leave their job before SIGKILL
SETTLE_TRIES = 20  # with Redis away, attempts 0.25 s apart to requeue and release before giving up


class Stopper:
    """Runs the stop sequence of one manager once its supervising loop has ended."""

    def __init__(self, client: Client, pool: Pool, settings: Settings, lifecycle: Lifecycle, lease: NameLease,
                 stats: Keeper, guard: Guard) -> None:
        self.client = client
        self.pool = pool
        self.settings = settings
        self.lifecycle = lifecycle
        self.lease = lease
        self.stats = stats
        self.guard = guard
        self.name = pool.name

    def shutdown(self) -> None:
        pool = self.pool
        slots = list(pool.slots.values())
        self._wait_for(slots)
        for slot in slots:
            if slot.process.is_alive():
                log.warning("manager %s: %s still busy; killing it, its job goes back to the queue",
                            self.name, slot.process.name)
                slot.process.kill()
            slot.process.join()
        self.stats.collect(slot.process.shared for slot in slots)
        self.guard(self.stats.flush, self.client.redis)
        names = [slot.process.name for slot in slots + pool.dead]
        pool.slots.clear()
        pool.dead.clear()
        self._settle_and_release(names)

    def _wait_for(self, slots: list[Slot]) -> None:
        lifecycle = self.lifecycle
        self.pool.signal_all(slots, lifecycle.urgent)
        deadline = time.monotonic() + (URGENT_GRACE if lifecycle.urgent else self.settings.graceful_timeout)
        heartbeat = self.settings.heartbeat_interval
        next_renewal = time.monotonic() + heartbeat
        settled: set[str] = set()
        while True:
            alive = [slot.process.sentinel for slot in slots if slot.process.is_alive()]
            self._requeue_deaths(slots, settled)
            if not alive:
                return
            if lifecycle.urgent and deadline > time.monotonic() + URGENT_GRACE:
                deadline = time.monotonic() + URGENT_GRACE  # a second signal arrived: hurry
                self.pool.signal_all(slots, urgent=True)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if time.monotonic() >= next_renewal:
                # Jobs may take longer to finish than the lease lasts: keep
                # the name, or others would requeue jobs that are still running.
                self.guard(self.lease.renew)
                next_renewal = time.monotonic() + heartbeat
            until_renewal = max(0.0, next_renewal - time.monotonic())
            wait([*alive, lifecycle.waker.fileno()], timeout=min(left, until_renewal))
            lifecycle.waker.drain()

    def _requeue_deaths(self, slots: list[Slot], settled: set[str]) -> None:
        # A worker that dies while the others finish their jobs gets its job
        # back in a queue now, not once the slowest of them is done.
        for slot in slots:
            name = slot.process.name
            if name in settled or slot.process.is_alive() or slot.process.exitcode in (0, None):
                continue
            cause = f"its worker {name} {slot.kill_reason or describe_exit(slot.process.exitcode)}"
            moved = self.guard(recovery.requeue_dead_worker, self.client, self.name, slot.process,
                               keep_own=False, cause=cause,
                               max_attempts=self.settings.limits.retry.max_attempts)
            if moved is not None:
                settled.add(name)
                if moved:
                    log.warning("manager %s: %s died while stopping; %d job(s) back in their queue "
                                "(or failed)", self.name, name, moved)
                    self.stats.count_requeued(moved)

    def _settle_and_release(self, names: list[str]) -> None:
        # Jobs still in the workers' lists go back to their queues (a stop
        # gives the attempt back); the name is released only then, or a
        # restart of this manager would not find them.
        for attempt in range(SETTLE_TRIES):
            try:
                self._requeue_all(names)
                if self.lifecycle.reexec:  # handing over: the next process takes the name with our token
                    self.client.redis.delete(self.client.keys.manager_workers(self.name))
                    if self.lease.renew() is not Renewal.LOST:
                        log.info("manager %s: stopped; handing over", self.name)
                        return
                    self.lifecycle.reexec = False  # lost the name meanwhile: stop for good
                self._forget_idle(names)
                self.lease.release()
                log.info("manager %s: stopped", self.name)
                return
            except TRANSIENT as exc:
                if attempt == 0:
                    log.warning("manager %s: Redis unavailable while stopping (%s); retrying", self.name, exc)
                time.sleep(0.25)
        log.error(
            "manager %s: could not reach Redis to stop cleanly; jobs left in its workers' lists "
            "are recovered when a manager of this name starts again, or by the others once its lease expires",
            self.name,
        )
        self.lifecycle.fail(stop=False)

    def _forget_idle(self, names: list[str]) -> None:
        # Named queues' idle hashes are shared with other managers: take our
        # workers out, or producers would try to wake workers that are gone.
        pipe = self.client.redis.pipeline()
        for idle in self.pool.idle_hashes()[1:]:
            if names:
                pipe.hdel(idle, *names)
        pipe.execute()

    def _requeue_all(self, names: list[str]) -> None:
        for worker in names:
            moved = recovery.requeue(self.client, self.name, worker, keep_own=False)
            if moved:
                log.warning("manager %s: requeued %d job(s) of %s", self.name, moved, worker)
