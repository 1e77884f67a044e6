"""The manager: holds its name in Redis, keeps N workers running, recovers their jobs.

A pre-fork arbiter: signal handlers and remote commands only record what was
asked; one supervising loop waits on the workers' process sentinels (so a
death is seen at once), on the socket its remote commands arrive on and on
its metrics endpoint. It puts a dead worker's jobs back before starting its
replacement, grows, shrinks and reloads the pool, renews the manager's
lease, writes the workers' counts to Redis, promotes due retries, reaps
managers whose lease ran out, and kills workers stuck past their time limit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Optional

from . import recovery
from .client import Client
from .connection import check_server, translated
from .control import Command, Inbox
from .exceptions import ConfigError, QwError
from .keys import validate_manager_name, worker_name
from .lease import NameLease, Renewal
from .retry import RetryPolicy
from .stats import DEFAULT_HISTORY, Keeper
from .target import CodeTracker, TargetSpec
from .titles import set_title
from .worker import (
    CONTROL_SIGNALS,
    EXIT_TARGET,
    STOP_SIGNALS,
    TRANSIENT,
    Limits,
    Switch,
    Worker,
    is_transient,
)

log = logging.getLogger("qw.manager")

QUICK_DEATH = 1.0  # a worker dying this soon, before any job, counts towards a crash loop
MAX_RESPAWN_DELAY = 10.0
URGENT_GRACE = 2.0  # after INT, how long workers get to leave their job before SIGKILL
LEASE_TOKEN_ENV = "QW_LEASE_TOKEN"  # hands the name over to the process a USR2 re-executes
# Options a reload (HUP, `qw-client reload`) applies; the others need a restart (USR2).
RELOADABLE = ("target", "num_workers", "graceful_timeout", "max_attempts", "backoff", "job_timeout",
              "kill_grace", "max_jobs_per_worker", "max_memory_per_worker", "poll_interval")


@dataclass
class _Slot:
    """One worker position; a replacement keeps the slot, so its name and list."""

    index: int
    process: Worker
    started: float
    quick_deaths: int = 0
    kill_reason: str = ""  # set when the manager killed it on purpose
    requeued: bool = False  # after its death: its jobs are back in their queues
    retiring: bool = False  # asked to leave after its job (shrink, reload): not replaced


class Manager:
    """Runs ``num_workers`` worker processes on ``target`` under the name ``name``.

    ``host``, ``port``, ``db``, ``num_workers`` (default: CPU count) and
    ``name`` (default: host name) are the original options; the rest are
    keyword-only: ``url``, ``namespace``, ``embedded`` (as for
    :class:`~qw.Client`); ``lease`` (seconds a silent manager keeps its name
    before others take its workers' jobs back) and ``heartbeat`` (seconds
    between renewals, and between the manager's other periodic steps;
    default the smaller of 1 s and a third of the lease); ``graceful_timeout`` (how long
    a stop lets running jobs finish); ``max_attempts`` and ``backoff``
    (retries, unless a job sets its own ``max_attempts``); ``job_timeout``
    (seconds, unless a job sets its own ``timeout``); ``kill_grace`` (how long
    past its limit a job that ignores the timeout has before its worker is
    killed); ``max_jobs_per_worker`` and ``max_memory_per_worker`` (MB:
    recycle a worker after its current job); ``poll_interval`` (see
    :class:`~qw.Worker`); ``history`` (hours of per-minute and days of
    per-day statistics kept in Redis); ``metrics_port`` and ``metrics_host``
    (serve Prometheus metrics there); ``options_source`` (called on reload
    for fresh keyword options, such as a configuration file read again);
    ``prefetch`` (jobs a worker claims per round trip; see the README).
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
        heartbeat: Optional[float] = None,
        graceful_timeout: float = 25.0,
        max_attempts: int = 3,
        backoff: float = 1.0,
        job_timeout: Optional[float] = None,
        kill_grace: float = 5.0,
        max_jobs_per_worker: Optional[int] = None,
        max_memory_per_worker: Optional[float] = None,
        poll_interval: float = 0.05,
        client: Optional[Client] = None,
        history: tuple[float, int] = DEFAULT_HISTORY,
        metrics_port: Optional[int] = None,
        metrics_host: str = "127.0.0.1",
        options_source: Optional[Callable[[], dict[str, Any]]] = None,
        prefetch: int = 1,
    ) -> None:
        self._code = CodeTracker()
        self.name = validate_manager_name(name or socket.gethostname())
        if lease <= 0:
            raise ConfigError("lease must be positive")
        if heartbeat is not None and not 0 < heartbeat <= lease / 2:
            raise ConfigError(f"heartbeat must be positive and at most half the lease ({lease / 2:g} s), "
                              f"got {heartbeat}")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ConfigError(f"prefetch must be a whole number of at least 1, got {prefetch!r}")
        self.prefetch = prefetch
        if history[0] <= 0 or history[1] < 1:
            raise ConfigError(f"history must keep some hours of minutes and at least a day, got {history}")
        self._configure(target=target, num_workers=num_workers, graceful_timeout=graceful_timeout,
                        max_attempts=max_attempts, backoff=backoff, job_timeout=job_timeout,
                        kill_grace=kill_grace, max_jobs_per_worker=max_jobs_per_worker,
                        max_memory_per_worker=max_memory_per_worker, poll_interval=poll_interval)
        # What a reload cannot change, to warn when a configuration file tries.
        self._fixed = {"name": name, "host": host, "port": port, "db": db, "url": url, "namespace": namespace,
                       "embedded": embedded, "lease": lease, "heartbeat": heartbeat, "history": history,
                       "metrics_port": metrics_port, "metrics_host": metrics_host, "prefetch": prefetch}
        self.client = client or Client(host, port, db, url=url, namespace=namespace, embedded=embedded)
        self.lease = lease
        # The manager's tick: lease renewal, retries due, reaping, health, stats.
        self.heartbeat = heartbeat or min(1.0, lease / 3)
        self.history = history
        self.exit_code = 0
        self.lease_holder = NameLease(self.client, self.name, lease, os.environ.pop(LEASE_TOKEN_ENV, None))
        self.paused = Switch()  # shared with every worker: set, they finish their job and claim no more
        self.stats = Keeper(self.client.keys, self.name, history)
        self.inbox = Inbox(self.client, self.name)
        self.options_source = options_source
        # The options as given at start, then as options_source gave them last.
        self._last_read: dict[str, Any] = {
            "target": target, "num_workers": num_workers, "graceful_timeout": graceful_timeout,
            "max_attempts": max_attempts, "backoff": backoff, "job_timeout": job_timeout,
            "kill_grace": kill_grace, "max_jobs_per_worker": max_jobs_per_worker,
            "max_memory_per_worker": max_memory_per_worker, "poll_interval": poll_interval}
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self._metrics: Any = None
        self._slots: dict[int, _Slot] = {}
        self._dead: list[_Slot] = []  # died; jobs not yet requeued, replacement not yet started
        self._requests: deque[Command] = deque()  # from signals and from other threads
        self._stop = threading.Event()
        self._urgent = False
        self._reexec = False  # USR2: after stopping, execute this program again under the same name
        self._thread: Optional[threading.Thread] = None
        self._started = False
        self._started_at = time.time()
        self._wake_r, self._wake_w = os.pipe()  # request_stop() wakes the supervising thread
        os.set_blocking(self._wake_r, False)
        self._outage = False

    def _configure(self, *, target: TargetSpec, num_workers: Any, graceful_timeout: float, max_attempts: int,
                   backoff: float, job_timeout: Optional[float], kill_grace: float,
                   max_jobs_per_worker: Optional[int], max_memory_per_worker: Optional[float],
                   poll_interval: float) -> None:
        """Check and set the options a reload may change; nothing is set unless all are good."""
        count = _worker_count(num_workers)
        if graceful_timeout < 0 or kill_grace < 0:
            raise ConfigError("graceful_timeout and kill_grace must not be negative")
        for option, value in (("job_timeout", job_timeout), ("max_jobs_per_worker", max_jobs_per_worker),
                              ("max_memory_per_worker", max_memory_per_worker)):
            if value is not None and value <= 0:
                raise ConfigError(f"{option} must be positive, got {value}")
        limits = Limits(RetryPolicy(max_attempts, backoff), job_timeout, max_jobs_per_worker,
                        max_memory_per_worker)
        # A target that cannot be imported stops us before any worker starts,
        # and a reload to code that cannot be imported keeps the old workers.
        if getattr(self, "target", None) is None:
            self._code.resolve(target)
        else:
            self._code.reload(target)
        self.target = target
        self.num_workers = count
        self.limits = limits
        self.graceful_timeout = graceful_timeout
        self.kill_grace = kill_grace
        self.poll_interval = poll_interval

    # -- public API ------------------------------------------------------------

    @property
    def workers(self) -> list[str]:
        """Names of the workers running now."""
        return [self._slots[i].process.name for i in sorted(self._slots)]

    @property
    def metrics_url(self) -> Optional[str]:
        """Where the Prometheus metrics are served, once started with ``metrics_port``."""
        return self._metrics.url if self._metrics is not None else None

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
        self._begin()
        self._thread = threading.Thread(target=self._supervise, name=f"qw-manager-{self.name}")
        self._thread.start()

    def _begin(self) -> None:
        if self._started:
            raise QwError(f"manager {self.name!r} was already started")
        self._started = True
        warnings = check_server(self.client.redis, self.client.config)
        self.lease_holder.acquire()
        for warning in warnings:
            log.warning("manager %s: %s", self.name, warning)
        try:
            if self.metrics_port is not None:
                from .metrics import MetricsServer  # only a manager that serves metrics needs it

                self._metrics = MetricsServer(self, self.metrics_host, self.metrics_port)
            self._recover_predecessor()
            for index in range(1, self.num_workers + 1):
                self._spawn(index)
        except BaseException:
            self.lease_holder.release()
            if self._metrics is not None:
                self._metrics.close()
            raise
        address = self.client.config.address()
        log.info("manager %s: started %d worker(s) on %s", self.name, self.num_workers, address)
        if self._metrics is not None:
            log.info("manager %s: Prometheus metrics on %s", self.name, self._metrics.url)
        self._show_title()

    def request(self, op: str, **args: Any) -> None:
        """Ask for ``scale`` (``n=``), ``expand``, ``contract``, ``reload``, ``pause``, ``resume``,
        ``reexec`` or ``stop`` without waiting (safe in a signal handler and from other threads)."""
        self._requests.append(Command(op, args, sender="this process"))
        self._wake()

    def scale(self, n: int) -> None:
        """Run ``n`` workers: start new ones, or let the surplus finish their job and leave."""
        self.request("scale", n=n)

    def reload(self) -> None:
        """Import the target afresh (and re-read options, if ``options_source``) and replace
        every worker: new ones start now, old ones finish their current job and leave."""
        self.request("reload")

    def pause(self) -> None:
        """Stop claiming jobs; running ones finish. Undone by :meth:`resume`."""
        self.request("pause")

    def resume(self) -> None:
        """Claim jobs again after :meth:`pause`."""
        self.request("resume")

    def request_stop(self, urgent: bool = False) -> None:
        """Ask for a stop without waiting (safe in a signal handler).

        Graceful: workers stop claiming; running jobs may finish within
        ``graceful_timeout``, then are killed and requeued. ``urgent``:
        running jobs are interrupted and requeued at once.
        """
        self._urgent = self._urgent or urgent
        self._stop.set()
        self._wake()

    def _wake(self) -> None:
        if self._wake_w >= 0:  # closed once the manager has stopped
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
        """Start, then obey signals until stopped; return the exit code. What ``qw-manager`` does.

        TERM and QUIT stop gracefully, INT (Ctrl-C) at once; a second
        signal during a graceful stop makes it immediate. TTIN adds a
        worker, TTOU retires one, HUP reloads (see :meth:`reload`), USR2
        stops gracefully and then executes this same command line again,
        handing the name over to the new process. Call from the main
        thread: it supervises the workers itself, so that the process forks
        its workers while it has a single thread (forking a multi-threaded
        process can deadlock the child, and Python 3.12+ warns about it).
        """
        handled = (*STOP_SIGNALS, *CONTROL_SIGNALS)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            self._begin()
            self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self._reexec and self.exit_code == 0:
            self._execute_again()
        return self.exit_code

    def _execute_again(self) -> None:
        # The name stays held (see _settle_and_release); the new process
        # takes it over with the token, so no other manager reaps it meanwhile.
        argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
        os.environ[LEASE_TOKEN_ENV] = self.lease_holder.token
        log.warning("manager %s: executing %s again", self.name, " ".join(argv))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.execv(sys.executable, argv)

    # -- the name --------------------------------------------------------------

    def _renew_lease(self) -> None:
        renewal = self.lease_holder.renew()
        if renewal is Renewal.LOST:
            # Two managers under one name would share worker lists: leave.
            log.error("manager %s: another process now holds this name; stopping", self.name)
            self.exit_code = 1
            self.request_stop()
            return
        if renewal is Renewal.HELD:
            return
        if renewal is Renewal.DATA_LOST:
            log.error("manager %s: Redis restarted without its data (persistence off?): "
                      "jobs queued or running before are lost", self.name)
        else:
            log.warning("manager %s: lease had expired (Redis out of reach for over %g s); "
                        "other managers may have requeued our running jobs", self.name, self.lease)
        pipe = self.client.redis.pipeline()
        pipe.sadd(self.client.keys.all_managers, self.name)
        if self._slots:
            pipe.sadd(self.client.keys.manager_workers(self.name), *self.workers)
        pipe.execute()

    def _recover_predecessor(self) -> None:
        # Workers still registered under our name belong to a manager of this
        # name that died: their jobs go back to their queues.
        for worker in self.client.get_manager_workers(self.name):
            with translated(self.client.config):
                moved = recovery.requeue(self.client, self.name, worker, keep_own=False,
                                         cause=f"its manager {self.name} died",
                                         max_attempts=self.limits.retry.max_attempts)
                self.client.redis.srem(self.client.keys.manager_workers(self.name), worker)
            if moved:
                log.warning("manager %s: requeued %d job(s) left by %s", self.name, moved, worker)

    # -- workers -----------------------------------------------------------------

    def _spawn(self, index: int, quick_deaths: int = 0) -> None:
        process = Worker(
            self.client, self.target, self.name,
            name=worker_name(self.name, index), poll_interval=self.poll_interval, limits=self.limits,
            paused=self.paused, prefetch=self.prefetch,
        )
        # Blocked while forking: a signal must not reach the child before it
        # has replaced the handlers it inherits from us.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS + CONTROL_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self._slots[index] = _Slot(index, process, time.monotonic(), quick_deaths)

    def _supervise(self) -> None:
        tick = self.heartbeat
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                self._handle_requests()
                if self._stop.is_set():
                    break
                respawn_in = self._handle_dead()
                if time.monotonic() >= next_tick:
                    self._periodic(tick)
                    next_tick = time.monotonic() + tick
                timeout = max(0.0, min(next_tick - time.monotonic(), respawn_in))
                sentinels = {slot.process.sentinel: slot for slot in self._slots.values()}
                inbox = self.inbox.fileno()
                metrics = self._metrics.fileno() if self._metrics is not None else None
                extra = [fd for fd in (inbox, metrics) if fd is not None]
                for item in wait([*sentinels, self._wake_r, *extra], timeout=timeout):
                    if item == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 512)
                    elif item == inbox:
                        self._requests.extend(self.inbox.take())
                    elif item == metrics:
                        self._metrics.handle()
                    else:
                        self._on_death(sentinels[item])
        finally:
            self._shutdown()
            wake_w, self._wake_w = self._wake_w, -1
            os.close(wake_w)
            os.close(self._wake_r)
            self.inbox.close()
            if self._metrics is not None:
                self._metrics.close()

    # -- control -------------------------------------------------------------------

    def _handle_requests(self) -> None:
        while self._requests:
            command = self._requests.popleft()
            try:
                ok, message, details = self._carry_out(command)
            except QwError as exc:
                ok, message, details = False, str(exc), {}
            except Exception as exc:  # a bad command must not take the manager down
                log.exception("manager %s: %s failed", self.name, command.op)
                ok, message, details = False, f"{type(exc).__name__}: {exc}", {}
            (log.info if ok else log.error)("manager %s: %s (%s, from %s)", self.name, message, command.op,
                                           command.sender)
            if command.sender != "this process":
                self._guarded(self.inbox.answer, command, ok, message, **details)
            self._show_title()
            self._guarded(self._publish_health)  # `qw-client info` shows the change at once

    def _carry_out(self, command: Command) -> tuple[bool, str, dict[str, Any]]:
        op, args = command.op, command.args
        before = self._active_count()
        if op in ("scale", "expand", "contract"):
            if op == "scale":
                n = args.get("n")
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    return False, f"scale needs a whole number of workers of at least 1, got {n!r}", {}
            else:
                n = max(1, before + (1 if op == "expand" else -1))
            self.num_workers = n
            self._scale_to(n)
            return True, f"workers {before} -> {n}", {"before": before, "after": n}
        if op == "reload":
            return self._reload()
        if op in ("pause", "resume"):
            was = bool(self.paused)
            self.paused.set(op == "pause")
            if self.paused:
                self._wait_for_idle_workers_to_hold()
            state = "paused" if self.paused else "claiming"
            changed = "now" if was != bool(self.paused) else "already"
            return True, f"{changed} {state}", {"paused": bool(self.paused)}
        if op == "stop":
            self.request_stop()
            return True, f"stopping: {before} worker(s) finish their job, then leave", {}
        if op == "reexec":
            self._reexec = True
            self.request_stop()
            return True, "stopping, to execute again on new code under the same name", {}
        return False, f"unknown command {op!r}", {}

    def _wait_for_idle_workers_to_hold(self, timeout: float = 2.0) -> None:
        # An idle worker may have a wait-and-claim in flight: the answer to
        # "pause" waits until none has, so no job queued after it is claimed.
        # Busy workers look at the flag before their next claim.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shared = [slot.process.shared for slot in self._slots.values() if slot.process.is_alive()]
            if all(s.holding.value or s.started.value for s in shared):
                return
            time.sleep(0.005)

    def _reloadable_options(self) -> dict[str, Any]:
        limits = self.limits
        return {"target": self.target, "num_workers": self.num_workers,
                "graceful_timeout": self.graceful_timeout,
                "max_attempts": limits.retry.max_attempts, "backoff": limits.retry.backoff,
                "job_timeout": limits.job_timeout, "kill_grace": self.kill_grace,
                "max_jobs_per_worker": limits.max_jobs, "max_memory_per_worker": limits.max_memory_mb,
                "poll_interval": self.poll_interval}

    def _active_count(self) -> int:
        """Workers that are, or will be, claiming jobs: not retiring, alive or about to be replaced."""
        return sum(not slot.retiring for slot in (*self._slots.values(), *self._dead))

    def _free_index(self) -> int:
        taken = {slot.index for slot in (*self._slots.values(), *self._dead)}
        index = 1
        while index in taken:
            index += 1
        return index

    def _scale_to(self, n: int) -> None:
        active = self._active_count()
        for _ in range(n - active):
            self._spawn(self._free_index())
        if active > n:
            # Retire what costs least: replacements not started yet, then idle
            # workers, then busy ones; the newest first.
            waiting = [slot for slot in self._dead if not slot.retiring]
            running = sorted((slot for slot in self._slots.values() if not slot.retiring),
                             key=lambda slot: (slot.process.shared.started.value != 0, -slot.index))
            for slot in (waiting + running)[: active - n]:
                self._retire(slot)

    def _retire(self, slot: _Slot) -> None:
        slot.retiring = True
        if slot in self._dead:
            return
        with contextlib.suppress(ProcessLookupError):
            if slot.process.pid is not None:
                os.kill(slot.process.pid, signal.SIGTERM)  # finish the job, then leave

    def _reload(self) -> tuple[bool, str, dict[str, Any]]:
        changed: list[str] = []
        current = self._reloadable_options()
        fresh = dict(current)
        if self.options_source is not None:
            options = self.options_source()
            # An option the file (or command line) did not change since the
            # last read keeps its present value: a pool resized at run time
            # stays that size across a reload of new code.
            last = self._last_read
            fresh = {name: options[name] if name in options and options[name] != last.get(name) else value
                     for name, value in current.items()}
            changed = [name for name in RELOADABLE if fresh[name] != current[name]]
            for name, value in self._fixed.items():
                if name in options and options[name] != value:
                    log.warning("manager %s: %s changed in the configuration; it takes effect only on a "
                                "restart (USR2)", self.name, name)
        self._configure(**fresh)
        if self.options_source is not None:
            self._last_read = options
        old = [slot for slot in (*self._slots.values(), *self._dead) if not slot.retiring]
        for slot in old:
            self._retire(slot)
        for _ in range(self.num_workers):
            self._spawn(self._free_index())
        message = (f"reloaded: {self.num_workers} worker(s) on freshly imported code; "
                   f"{len(old)} old one(s) finish their job and leave")
        if changed:
            message += f"; changed: {', '.join(changed)}"
        return True, message, {"changed": changed, "after": self.num_workers}

    def _periodic(self, tick: float) -> None:
        self._guarded(self._renew_lease)
        self._enforce_time_limits()
        self._guarded(self._publish_health)
        self.collect_stats()
        self._guarded(self.stats.flush, self.client.redis)
        moved = self._guarded(recovery.promote, self.client)
        if moved:
            log.info("manager %s: %d job(s) due for a retry are queued again", self.name, moved)
        self._guarded(recovery.reap_departed, self.client, self.name, int(tick * 1000),
                      self.limits.retry.max_attempts)

    def _enforce_time_limits(self) -> None:
        # Workers stop their own jobs at the limit (SIGALRM); this is the
        # backstop for a job stuck where Python cannot interrupt it.
        now = time.monotonic()
        for slot in self._slots.values():
            deadline = slot.process.shared.deadline.value
            if deadline and now > deadline + self.kill_grace and not slot.kill_reason:
                slot.kill_reason = (f"ran past its time limit and did not stop; "
                                    f"killed {self.kill_grace:g} s later")
                log.warning("manager %s: %s %s", self.name, slot.process.name, slot.kill_reason)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signal.SIGKILL)

    def _publish_health(self) -> None:
        now = time.time()
        health = {}
        for slot in self._slots.values():
            shared = slot.process.shared
            health[slot.process.name] = json.dumps({
                "pid": slot.process.pid,
                "busy_for": round(now - shared.started.value, 3) if shared.started.value else None,
                "since_last_claim": round(max(0.0, now - shared.last_ok.value), 3),
                "at": now,
            })
        from . import __version__  # here: qw/__init__.py imports this module

        keys = self.client.keys
        key = keys.manager_health(self.name)
        pipe = self.client.redis.pipeline()
        pipe.delete(key)
        if health:
            pipe.hset(key, mapping=health)
        pipe.pexpire(key, int(self.lease * 3000))
        pipe.hset(keys.manager_info(self.name), mapping={
            "pid": os.getpid(), "host": socket.gethostname(), "version": __version__,
            "target": self.target if isinstance(self.target, str) else getattr(self.target, "__name__", "?"),
            "workers": self.num_workers, "running": self._active_count(), "paused": int(bool(self.paused)),
            "leaving": sum(slot.retiring for slot in self._slots.values()),
            "started": self._started_at, "at": now, "history_hours": self.history[0],
            "history_days": self.history[1],
        })
        pipe.pexpire(keys.manager_info(self.name), int(self.lease * 3000))
        pipe.execute()

    def collect_stats(self) -> None:
        """Take the workers' counts into :attr:`stats` (written to Redis each tick)."""
        self.stats.collect(slot.process.shared.tally for slot in self._slots.values())

    def _show_title(self) -> None:
        state = ", paused" if self.paused else ""
        retiring = sum(slot.retiring for slot in self._slots.values())
        extra = f", {retiring} leaving" if retiring else ""
        set_title(f"qw-manager {self.name}: {self._active_count()} workers{extra}{state}")

    def _on_death(self, slot: _Slot) -> None:
        process = slot.process
        process.join()
        del self._slots[slot.index]
        self.stats.collect([process.shared.tally])
        self.stats.forget(process.shared.tally)
        if process.exitcode == EXIT_TARGET:
            log.error("manager %s: %s cannot import its target; stopping", self.name, process.name)
            self.exit_code = 1
            self._stop.set()
        if process.exitcode == 0 and slot.retiring:
            log.info("manager %s: %s finished and left", self.name, process.name)
        elif process.exitcode == 0 and not self._stop.is_set():
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
        self._dead.append(slot)

    def _handle_dead(self) -> float:
        """Requeue dead workers' jobs, then start replacements; seconds until the next is due."""
        next_due = float("inf")
        for slot in list(self._dead):
            name = slot.process.name
            if not slot.requeued:
                cause = f"its worker {name} {slot.kill_reason}" if slot.kill_reason else ""
                moved = self._guarded(self._requeue_dead, slot, cause)
                if moved is None:  # Redis away: jobs go back before a replacement starts
                    next_due = min(next_due, 0.5)
                    continue
                slot.requeued = True
                if moved:
                    log.warning("manager %s: %d job(s) of %s back in their queue (or failed)",
                                self.name, moved, name)
                    if cause:
                        self.stats.count_requeued(moved)
            if slot.retiring:  # not replaced
                self._dead.remove(slot)
                self._show_title()
                continue
            # A worker dying at start over and over waits longer each time.
            delay = 0.0 if slot.quick_deaths == 0 else min(0.1 * 2 ** slot.quick_deaths, MAX_RESPAWN_DELAY)
            due = slot.started + delay
            if time.monotonic() < due:
                next_due = min(next_due, due - time.monotonic())
                continue
            self._dead.remove(slot)
            if not self._stop.is_set():
                self._spawn(slot.index, slot.quick_deaths)
        return next_due

    def _requeue_dead(self, slot: _Slot, cause: str) -> int:
        name = slot.process.name
        if not slot.retiring:  # jobs queued to this very worker wait for its replacement
            return recovery.requeue(self.client, self.name, name, keep_own=True, cause=cause,
                                    max_attempts=self.limits.retry.max_attempts)
        # Leaving for good: unlisted first, so no producer can queue to it
        # after its list is emptied; jobs queued to it go to our queue.
        keys = self.client.keys
        pipe = self.client.redis.pipeline()
        pipe.srem(keys.manager_workers(self.name), name)
        pipe.hdel(keys.manager_idle(self.name), name)
        pipe.execute()
        return recovery.requeue(self.client, self.name, name, keep_own=False, cause=cause,
                                max_attempts=self.limits.retry.max_attempts)

    def _guarded(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a Redis step of the supervising loop; on trouble log and return None.

        A step that fails must not take the manager down with it: the next
        tick tries again. Connection trouble is logged once per outage.
        """
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("manager %s: %s failed", self.name, getattr(call, "__name__", call))
                return None
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
        self._signal_workers(slots)
        deadline = time.monotonic() + (URGENT_GRACE if self._urgent else self.graceful_timeout)
        next_renewal = time.monotonic() + self.heartbeat
        settled: set[str] = set()
        while True:
            alive = [slot.process.sentinel for slot in slots if slot.process.is_alive()]
            self._requeue_deaths_while_stopping(slots, settled)
            if not alive:
                break
            if self._urgent and deadline > time.monotonic() + URGENT_GRACE:
                deadline = time.monotonic() + URGENT_GRACE  # a second signal arrived: hurry
                self._signal_workers(slots)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if time.monotonic() >= next_renewal:
                # Jobs may take longer to finish than the lease lasts: keep
                # the name, or others would requeue jobs that are still running.
                self._guarded(self.lease_holder.renew)
                next_renewal = time.monotonic() + self.heartbeat
            wait([*alive, self._wake_r], timeout=min(left, max(0.0, next_renewal - time.monotonic())))
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
        for slot in slots:
            if slot.process.is_alive():
                log.warning("manager %s: %s still busy; killing it, its job goes back to the queue",
                            self.name, slot.process.name)
                slot.process.kill()
            slot.process.join()
        self.stats.collect(slot.process.shared.tally for slot in slots)
        self._guarded(self.stats.flush, self.client.redis)
        names = [slot.process.name for slot in slots + self._dead]
        self._slots.clear()
        self._dead.clear()
        self._settle_and_release(names)

    def _requeue_deaths_while_stopping(self, slots: list[_Slot], settled: set[str]) -> None:
        # A worker that dies while the others finish their jobs gets its job
        # back in a queue now, not once the slowest of them is done.
        for slot in slots:
            name = slot.process.name
            if name in settled or slot.process.is_alive() or slot.process.exitcode in (0, None):
                continue
            cause = f"its worker {name} {slot.kill_reason or describe_exit(slot.process.exitcode)}"
            moved = self._guarded(recovery.requeue, self.client, self.name, name, keep_own=False, cause=cause,
                                  max_attempts=self.limits.retry.max_attempts)
            if moved is not None:
                settled.add(name)
                if moved:
                    log.warning("manager %s: %s died while stopping; %d job(s) back in their queue "
                                "(or failed)", self.name, name, moved)
                    self.stats.count_requeued(moved)

    def _signal_workers(self, slots: list[_Slot]) -> None:
        signum = signal.SIGINT if self._urgent else signal.SIGTERM
        for slot in slots:
            with contextlib.suppress(ProcessLookupError):
                if slot.process.pid is not None and slot.process.is_alive():
                    os.kill(slot.process.pid, signum)

    def _settle_and_release(self, names: list[str]) -> None:
        # Jobs still in the workers' lists go back to their queues (a stop
        # gives the attempt back); the name is released only then, or a
        # restart of this manager would not find them.
        for attempt in range(20):
            try:
                for worker in names:
                    moved = recovery.requeue(self.client, self.name, worker, keep_own=False)
                    if moved:
                        log.warning("manager %s: requeued %d job(s) of %s", self.name, moved, worker)
                if self._reexec:  # handing over: the next process takes the name with our token
                    self.client.redis.delete(self.client.keys.manager_workers(self.name))
                    if self.lease_holder.renew() is not Renewal.LOST:
                        log.info("manager %s: stopped; handing over", self.name)
                        return
                    self._reexec = False  # lost the name meanwhile: stop for good
                self.lease_holder.release()
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
        self.exit_code = 1

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only record the request: the supervising loop does the work.
        operation = {signal.SIGTTIN: "expand", signal.SIGTTOU: "contract", signal.SIGHUP: "reload",
                     signal.SIGUSR2: "reexec"}.get(signal.Signals(signum))
        if operation and not self._stop.is_set():
            self.request(operation)
        elif not operation:
            self.request_stop(urgent=signum == signal.SIGINT or self._stop.is_set())


def describe_exit(code: Optional[int]) -> str:
    """'exited with code 1', 'was killed by SIGKILL (...)', ... for a multiprocessing exit code."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"was killed by signal {-code}"
        if -code == signal.SIGKILL:
            return "was killed by SIGKILL (out of memory? the kernel's OOM killer sends it)"
        return f"was killed by {name}"
    return f"exited with code {code}"


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
