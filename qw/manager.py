"""The manager: holds its name in Redis, keeps N workers running, recovers their jobs.

A pre-fork arbiter: signal handlers only record what was asked; one
supervising thread waits on the workers' process sentinels (so a death is
seen at once), puts a dead worker's in-progress jobs back before starting its
replacement, and renews the manager's lease.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Optional

from .claim import requeue_worker
from .client import Client
from .connection import check_server, translated
from .exceptions import ConfigError, ManagerNameTaken, QwError
from .keys import validate_manager_name, worker_name
from .target import TargetSpec, resolve
from .worker import EXIT_TARGET, STOP_SIGNALS, TRANSIENT, Worker

log = logging.getLogger("qw.manager")

QUICK_DEATH = 1.0  # a worker dying sooner than this after its start counts towards a crash loop
MAX_RESPAWN_DELAY = 10.0


@dataclass
class _Slot:
    """One worker position; a replacement keeps the slot, so its name and list."""

    index: int
    process: Worker
    started: float
    quick_deaths: int = 0


class Manager:
    """Runs ``num_workers`` worker processes on ``target`` under the name ``name``.

    ``host``, ``port``, ``db``, ``num_workers`` (default: CPU count) and
    ``name`` (default: host name) are the original options; the rest are
    keyword-only: ``url``, ``namespace``, ``embedded`` (as for
    :class:`~qw.Client`), ``lease`` (seconds a silent manager keeps its name),
    ``graceful_timeout`` (how long :meth:`stop` lets running jobs finish) and
    ``poll_interval`` (see :class:`~qw.Worker`).
    """

    def __init__(
        self,
        target: TargetSpec,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        num_workers: Optional[int] = None,
        name: Optional[str] = None,
        *,
        url: Optional[str] = None,
        namespace: str = "",
        embedded: Optional[str] = None,
        lease: float = 10.0,
        graceful_timeout: float = 30.0,
        poll_interval: float = 0.05,
        client: Optional[Client] = None,
    ) -> None:
        self.target = target
        resolve(target)  # a target that cannot be imported stops us before any worker starts
        self.num_workers = _worker_count(num_workers)
        self.name = validate_manager_name(name or socket.gethostname())
        if lease <= 0 or graceful_timeout < 0:
            raise ConfigError("lease must be positive and graceful_timeout not negative")
        self.client = client or Client(host, port, db, url=url, namespace=namespace, embedded=embedded)
        self.lease = lease
        self.graceful_timeout = graceful_timeout
        self.poll_interval = poll_interval
        self.exit_code = 0
        self._token = f"pid {os.getpid()} on {socket.gethostname()} ({uuid.uuid4().hex[:8]})"
        self._slots: dict[int, _Slot] = {}
        self._dead: list[_Slot] = []  # died; jobs not yet requeued, replacement not yet started
        self._stop = threading.Event()
        self._urgent = False
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._wake_r, self._wake_w = os.pipe()
        self._outage = False

    # -- public API ------------------------------------------------------------

    @property
    def workers(self) -> list[str]:
        """Names of the workers running now."""
        return [self._slots[i].process.name for i in sorted(self._slots)]

    @property
    def worker_pids(self) -> dict[str, int]:
        """Process id of each running worker, by name."""
        return {self._slots[i].process.name: self._slots[i].process.pid for i in sorted(self._slots)}

    def start(self) -> None:
        """Take the name, recover what a predecessor left, start the workers.

        Returns once the workers are started; a supervising thread keeps them
        running until :meth:`stop`. Raises :class:`ManagerNameTaken` if a live
        manager holds the name, :class:`ConnectionFailed` if Redis cannot serve.
        """
        if self._thread is not None:
            raise QwError(f"manager {self.name!r} was already started")
        check_server(self.client.redis, self.client.config)
        self._acquire_name()
        try:
            self._recover_predecessor()
            for index in range(1, self.num_workers + 1):
                self._spawn(index)
        except BaseException:
            self._release_name()
            raise
        address = self.client.config.address()
        log.info("manager %s: started %d worker(s) on %s", self.name, self.num_workers, address)
        self._thread = threading.Thread(target=self._supervise, name=f"qw-manager-{self.name}")
        self._thread.start()

    def request_stop(self, urgent: bool = False) -> None:
        """Ask for a stop without waiting (safe in a signal handler).

        Graceful: running jobs may finish within ``graceful_timeout``.
        ``urgent``: workers are killed at once and their jobs requeued.
        """
        self._urgent = self._urgent or urgent
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop gracefully and wait until the workers are gone and the name is released."""
        self.request_stop()
        self.join(timeout)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the manager has stopped; False if ``timeout`` ran out first."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run(self) -> int:
        """Start, stop on TERM, INT, QUIT or HUP (a second one: at once), return the exit code.

        This is what ``qw-manager`` does; call it from the main thread.
        """
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            self.start()
            while not self.join(timeout=0.5):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.exit_code

    # -- the name --------------------------------------------------------------

    def _acquire_name(self) -> None:
        keys = self.client.keys
        with translated(self.client.config):
            holder = self.client.scripts.acquire_name(
                keys=[keys.manager_heartbeat(self.name), keys.all_managers],
                args=[self.name, self._token, int(self.lease * 1000)],
            )
        if holder:
            holder = holder.decode() if isinstance(holder, bytes) else holder
            raise ManagerNameTaken(f"manager {self.name!r} is already running: held by {holder}")

    def _renew_lease(self) -> None:
        keys = self.client.keys
        renewed = self.client.scripts.renew_lease(
            keys=[keys.manager_heartbeat(self.name)], args=[self._token, int(self.lease * 1000)]
        )
        if renewed == 2:
            log.warning("manager %s: lease had expired (Redis out of reach too long); retaken", self.name)
        elif renewed == 0:
            log.error("manager %s: another process now holds this name", self.name)

    def _release_name(self) -> None:
        keys = self.client.keys
        self.client.scripts.release_name(
            keys=[keys.manager_heartbeat(self.name), keys.all_managers, keys.manager_workers(self.name)],
            args=[self.name, self._token],
        )

    def _recover_predecessor(self) -> None:
        # Workers still registered under our name belong to a manager of this
        # name that died: their in-progress jobs go back to their queues.
        for worker in self.client.get_manager_workers(self.name):
            with translated(self.client.config):
                moved = self._requeue(worker, keep_own=False)
                self.client.redis.srem(self.client.keys.manager_workers(self.name), worker)
            if moved:
                log.warning("manager %s: requeued %d job(s) left by %s", self.name, moved, worker)

    # -- workers -----------------------------------------------------------------

    def _spawn(self, index: int, quick_deaths: int = 0) -> None:
        process = Worker(
            self.client,
            self.target,
            self.name,
            name=worker_name(self.name, index),
            poll_interval=self.poll_interval,
        )
        # Blocked while forking: a signal must not reach the child before it
        # has replaced the handlers it inherits from us.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self._slots[index] = _Slot(index, process, time.monotonic(), quick_deaths)

    def _requeue(self, worker: str, keep_own: bool) -> int:
        client = self.client
        return requeue_worker(client.redis, client.scripts, client.keys, self.name, worker, keep_own)

    def _supervise(self) -> None:
        tick = min(1.0, self.lease / 3)
        next_renewal = time.monotonic() + tick
        try:
            while not self._stop.is_set():
                respawn_in = self._handle_dead()
                timeout = max(0.0, min(next_renewal - time.monotonic(), respawn_in))
                sentinels = {slot.process.sentinel: slot for slot in self._slots.values()}
                ready = wait([*sentinels, self._wake_r], timeout=timeout)
                for item in ready:
                    if item == self._wake_r:
                        os.read(self._wake_r, 512)
                    else:
                        self._on_death(sentinels[item])
                if time.monotonic() >= next_renewal:
                    self._guarded(self._renew_lease)
                    next_renewal = time.monotonic() + tick
        finally:
            self._shutdown()
            self._stopped.set()

    def _on_death(self, slot: _Slot) -> None:
        process = slot.process
        process.join()
        del self._slots[slot.index]
        if process.exitcode == EXIT_TARGET:
            log.error("manager %s: %s cannot import its target; stopping", self.name, process.name)
            self.exit_code = 1
            self._stop.set()
        quick = time.monotonic() - slot.started < QUICK_DEATH
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        slot.started = time.monotonic()  # from now on: when it died
        log.warning("manager %s: %s died (%s)", self.name, process.name, describe_exit(process.exitcode))
        self._dead.append(slot)

    def _handle_dead(self) -> float:
        """Requeue dead workers' jobs, then start replacements; seconds until the next is due."""
        next_due = float("inf")
        for slot in list(self._dead):
            name = slot.process.name
            # A worker dying at start over and over waits longer each time.
            delay = 0.0 if slot.quick_deaths == 0 else min(0.1 * 2 ** slot.quick_deaths, MAX_RESPAWN_DELAY)
            due = slot.started + delay
            if time.monotonic() < due:
                next_due = min(next_due, due - time.monotonic())
                continue
            moved = self._guarded(self._requeue, name, True)
            if moved is None:  # Redis away: jobs go back before a replacement starts
                next_due = min(next_due, 0.5)
                continue
            self._dead.remove(slot)
            if moved:
                log.warning("manager %s: requeued %d job(s) of %s", self.name, moved, name)
            self._spawn(slot.index, slot.quick_deaths)
        return next_due

    def _guarded(self, call: Callable[..., Any], *args: Any) -> Any:
        """Run a Redis call; on a connection problem log once and return None."""
        try:
            result = call(*args)
        except TRANSIENT as exc:
            if not self._outage:
                log.warning("manager %s: Redis unavailable (%s)", self.name, exc)
                self._outage = True
            return None
        if self._outage:
            log.warning("manager %s: Redis reachable again", self.name)
            self._outage = False
        return result

    # -- stopping ------------------------------------------------------------------

    def _shutdown(self) -> None:
        slots = list(self._slots.values())
        for slot in slots:
            if self._urgent:
                slot.process.kill()
            else:
                slot.process.shutdown()
        deadline = time.monotonic() + (0 if self._urgent else self.graceful_timeout)
        for slot in slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("manager %s: %s still busy after the grace period; killing it",
                            self.name, slot.process.name)
                slot.process.kill()
                slot.process.join()
        names = [slot.process.name for slot in slots + self._dead]
        self._slots.clear()
        self._dead.clear()
        self._settle_and_release(names)

    def _settle_and_release(self, names: list[str]) -> None:
        # Jobs still in the workers' lists go back to their queues; the name is
        # released only then, or a restart of this manager would not find them.
        for attempt in range(20):
            try:
                for worker in names:
                    moved = self._requeue(worker, keep_own=False)
                    if moved:
                        log.warning("manager %s: requeued %d job(s) of %s", self.name, moved, worker)
                self._release_name()
                log.info("manager %s: stopped", self.name)
                return
            except TRANSIENT as exc:
                if attempt == 0:
                    log.warning("manager %s: Redis unavailable while stopping (%s); retrying", self.name, exc)
                time.sleep(0.25)
        log.error(
            "manager %s: could not reach Redis to stop cleanly; jobs left in its workers' lists "
            "are recovered when a manager of this name starts again",
            self.name,
        )
        self.exit_code = 1

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only record the request: the supervising thread does the work.
        self.request_stop(urgent=self._stop.is_set())


def describe_exit(code: Optional[int]) -> str:
    """'exit code 1', 'killed by SIGKILL', ... for a multiprocessing exit code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _worker_count(value: Any) -> int:
    if value is None:
        return os.cpu_count() or 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"number of workers must be a positive integer, got {value!r}") from None
    if count < 1 or str(count) != str(value).strip():
        raise ConfigError(f"number of workers must be a positive integer, got {value!r}")
    return count
