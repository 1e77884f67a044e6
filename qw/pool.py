"""A manager's worker slots: spawn, scale, retire, replace on reload, and deaths with their requeue.

Slots are numbered; a replacement keeps its slot, so its worker name and
in-progress list. A worker that leaves for good (shrink, reload) is
*retiring*: it gets SIGTERM, finishes its job and is not replaced; new
workers take the lowest free number, so a worker still finishing its job and
its successor never share a list. After a death the worker's jobs go back to
their queues before its replacement starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from . import recovery
from .client import Client
from .connection import translated
from .guard import Guard
from .keeper import Keeper
from .keys import SHARED_QUEUE, worker_name
from .lifecycle import Lifecycle
from .options import Settings
from .process import CONTROL_SIGNALS, EXIT_TARGET, STOP_SIGNALS, Switch, describe_exit
from .worker import Worker

log = logging.getLogger("qw.manager")

QUICK_DEATH = 1.0  # a worker dying this soon, before any job, counts towards a crash loop
MAX_RESPAWN_DELAY = 10.0


@dataclass
class Slot:
    """One worker position; a replacement keeps the slot, so its name and list."""

    index: int
    process: Worker
    started: float
    quick_deaths: int = 0
    kill_reason: str = ""  # set when the manager killed it on purpose
    requeued: bool = False  # after its death: its jobs are back in their queues
    retiring: bool = False  # asked to leave after its job (shrink, reload): not replaced


class Pool:
    """The worker processes of manager ``name``, kept at ``settings.num_workers``."""

    def __init__(self, client: Client, name: str, settings: Settings, paused: Switch, stats: Keeper,
                 guard: Guard, lifecycle: Lifecycle) -> None:
        self.client = client
        self.name = name
        self.settings = settings
        self.paused = paused
        self.stats = stats
        self.guard = guard
        self.lifecycle = lifecycle
        self.slots: dict[int, Slot] = {}  # alive (or not yet seen dead)
        self.dead: list[Slot] = []  # died; jobs not yet requeued, replacement not yet started
        self.on_change: Callable[[], None] = lambda: None  # a worker left for good: refresh the title

    # -- looking -----------------------------------------------------------------

    @property
    def workers(self) -> list[str]:
        """Names of the workers running now."""
        return [self.slots[i].process.name for i in sorted(self.slots)]

    @property
    def worker_pids(self) -> dict[str, int]:
        """Process id of each running worker, by name."""
        return {self.slots[i].process.name: self.slots[i].process.pid for i in sorted(self.slots)}

    def sentinels(self) -> dict[int, Slot]:
        """Each live worker's process sentinel (readable once it died), to wait on."""
        return {slot.process.sentinel: slot for slot in self.slots.values()}

    def active_count(self) -> int:
        """Workers that are, or will be, claiming jobs: not retiring, alive or about to be replaced."""
        return sum(not slot.retiring for slot in (*self.slots.values(), *self.dead))

    def retiring_count(self) -> int:
        return sum(slot.retiring for slot in self.slots.values())

    def all_slots(self) -> list[Slot]:
        return [*self.slots.values(), *self.dead]

    # -- starting and resizing -------------------------------------------------------

    def recover_predecessor(self) -> None:
        """Workers still registered under our name belong to a manager of this name that died:
        their jobs go back to their queues."""
        for worker in self.client.get_manager_workers(self.name):
            with translated(self.client.config):
                moved = recovery.requeue(self.client, self.name, worker, keep_own=False,
                                         cause=f"its manager {self.name} died",
                                         max_attempts=self.settings.limits.retry.max_attempts)
                self.client.redis.srem(self.client.keys.manager_workers(self.name), worker)
            if moved:
                log.warning("manager %s: requeued %d job(s) left by %s", self.name, moved, worker)

    def spawn(self, index: int, quick_deaths: int = 0) -> None:
        settings = self.settings
        process = Worker(
            self.client, settings.target, self.name,
            name=worker_name(self.name, index), poll_interval=settings.poll_interval,
            limits=settings.limits, paused=self.paused, prefetch=settings.prefetch,
            tasks=settings.task_map, allow=settings.allow,
            queues=list(settings.queues) if settings.queues else None,
        )
        # Blocked while forking: a signal must not reach the child before it
        # has replaced the handlers it inherits from us.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS + CONTROL_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self.slots[index] = Slot(index, process, time.monotonic(), quick_deaths)

    def start(self) -> None:
        for index in range(1, self.settings.num_workers + 1):
            self.spawn(index)

    def free_index(self) -> int:
        taken = {slot.index for slot in self.all_slots()}
        index = 1
        while index in taken:
            index += 1
        return index

    def scale_to(self, n: int) -> None:
        active = self.active_count()
        for _ in range(n - active):
            self.spawn(self.free_index())
        if active > n:
            # Retire what costs least: replacements not started yet, then idle
            # workers, then busy ones; the newest first.
            waiting = [slot for slot in self.dead if not slot.retiring]
            running = sorted((slot for slot in self.slots.values() if not slot.retiring),
                             key=lambda slot: (slot.process.shared.started.value != 0, -slot.index))
            for slot in (waiting + running)[: active - n]:
                self.retire(slot)

    def replace_all(self) -> int:
        """A reload: every worker leaves after its job; new ones on the code imported now start at
        once. Returns how many old ones leave."""
        old = [slot for slot in self.all_slots() if not slot.retiring]
        for slot in old:
            self.retire(slot)
        for _ in range(self.settings.num_workers):
            self.spawn(self.free_index())
        return len(old)

    def retire(self, slot: Slot) -> None:
        slot.retiring = True
        if slot in self.dead:
            return
        with contextlib.suppress(ProcessLookupError):
            if slot.process.pid is not None:
                os.kill(slot.process.pid, signal.SIGTERM)  # finish the job, then leave

    def kill(self, slot: Slot, reason: str) -> None:
        """SIGKILL a worker on purpose; ``reason`` becomes the cause its job is requeued with."""
        slot.kill_reason = reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, signal.SIGKILL)

    # -- deaths --------------------------------------------------------------------

    def on_death(self, slot: Slot) -> None:
        """A worker's sentinel fired: note why it died and queue it for requeue and replacement."""
        process = slot.process
        process.join()
        del self.slots[slot.index]
        self.stats.collect([process.shared])
        self.stats.forget(process.shared)
        if process.exitcode == EXIT_TARGET:
            log.error("manager %s: %s cannot import its target; stopping", self.name, process.name)
            self.lifecycle.fail()
        if process.exitcode == 0 and slot.retiring:
            log.info("manager %s: %s finished and left", self.name, process.name)
        elif process.exitcode == 0 and not self.lifecycle.stopping:
            log.info("manager %s: %s left to be recycled", self.name, process.name)
            slot.quick_deaths = 0
        else:
            # Killed while working is not a crash loop (a poison job is bounded
            # by its attempts); dying at start, before any job, is.
            quick = time.monotonic() - slot.started < QUICK_DEATH and process.shared.jobs.value == 0
            slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
            slot.kill_reason = slot.kill_reason or describe_exit(process.exitcode)
            log.warning("manager %s: %s died (%s)", self.name, process.name, slot.kill_reason)
        slot.started = time.monotonic()  # from now on: when it died
        slot.requeued = False
        self.dead.append(slot)

    def handle_dead(self) -> float:
        """Requeue dead workers' jobs, then start replacements; seconds until the next is due."""
        next_due = float("inf")
        for slot in list(self.dead):
            if not slot.requeued and not self._requeue_dead(slot):
                next_due = min(next_due, 0.5)  # Redis away: jobs go back before a replacement starts
                continue
            if slot.retiring:  # not replaced
                self.dead.remove(slot)
                self.on_change()
                continue
            # A worker dying at start over and over waits longer each time.
            delay = 0.0 if slot.quick_deaths == 0 else min(0.1 * 2 ** slot.quick_deaths, MAX_RESPAWN_DELAY)
            due = slot.started + delay
            if time.monotonic() < due:
                next_due = min(next_due, due - time.monotonic())
                continue
            self.dead.remove(slot)
            if not self.lifecycle.stopping:
                self.spawn(slot.index, slot.quick_deaths)
        return next_due

    def _requeue_dead(self, slot: Slot) -> bool:
        name = slot.process.name
        cause = f"its worker {name} {slot.kill_reason}" if slot.kill_reason else ""
        moved = self.guard(self._requeue, slot, cause)
        if moved is None:
            return False
        slot.requeued = True
        if moved:
            log.warning("manager %s: %d job(s) of %s back in their queue (or failed)", self.name, moved, name)
            if cause:
                self.stats.count_requeued(moved)
        return True

    def _requeue(self, slot: Slot, cause: str) -> int:
        name = slot.process.name
        max_attempts = self.settings.limits.retry.max_attempts
        if not slot.retiring:  # jobs queued to this very worker wait for its replacement
            return recovery.requeue_dead_worker(self.client, self.name, slot.process, keep_own=True,
                                                cause=cause, max_attempts=max_attempts)
        # Leaving for good: unlisted first, so no producer can queue to it
        # after its list is emptied; jobs queued to it go to our queue.
        keys = self.client.keys
        pipe = self.client.redis.pipeline()
        pipe.srem(keys.manager_workers(self.name), name)
        for idle in self.idle_hashes():
            pipe.hdel(idle, name)
        pipe.execute()
        return recovery.requeue_dead_worker(self.client, self.name, slot.process, keep_own=False, cause=cause,
                                            max_attempts=max_attempts)

    def idle_hashes(self) -> list[str]:
        """Where this manager's idle workers list themselves: ``<manager>:idle`` and the idle hash
        of each named queue it serves (whose entries its workers leave behind when they go)."""
        keys = self.client.keys
        named = [name for name, _weight in self.settings.queues or () if name != SHARED_QUEUE]
        return [keys.manager_idle(self.name), *(keys.named_queue_idle(name) for name in named)]

    # -- stopping --------------------------------------------------------------------

    def signal_all(self, slots: Iterable[Slot], urgent: bool) -> None:
        """SIGINT (urgent: interrupt the job) or SIGTERM (finish it) to each live worker."""
        signum = signal.SIGINT if urgent else signal.SIGTERM
        for slot in slots:
            with contextlib.suppress(ProcessLookupError):
                if slot.process.pid is not None and slot.process.is_alive():
                    os.kill(slot.process.pid, signum)

    def deadline_passed(self, slot: Slot, grace: float, now: Optional[float] = None) -> bool:
        """True once ``slot``'s running job is ``grace`` seconds past its time limit."""
        deadline = slot.process.shared.deadline.value
        return bool(deadline) and (now if now is not None else time.monotonic()) > deadline + grace
