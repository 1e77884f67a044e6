"""The manager: holds its name in Redis, keeps N workers running, recovers their jobs.

A pre-fork arbiter, cut into parts that each do one thing:

- :mod:`qw.options` checks the options (one table) and keeps them (``Settings``);
- :mod:`qw.pool` holds the worker slots: spawn, resize, retire, deaths and their requeue;
- :mod:`qw.duties` are the chores run each tick or when their socket is
  readable: lease renewal, time limits, health, statistics, due delayed jobs and retries,
  reaping lapsed managers, the control inbox, the metrics endpoint;
- :mod:`qw.commands` carries out requests (signals, other threads, Redis);
- :mod:`qw.supervisor` is the loop, the one ``wait()``;
- :mod:`qw.stopping` is the stop sequence.

This module wires them together and holds the public API.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Optional, Sequence

from .client import Client
from .commands import Commands
from .connection import check_server
from .control import Inbox
from .durable import DEFAULT_WAIT_TIMEOUT_MS
from .duties import Duty
from .duties.health import PublishHealth
from .duties.inbox import ControlInbox
from .duties.lease import RenewLease
from .duties.reaper import ReapDeparted
from .duties.records import CleanRecordIndexes
from .duties.releases import FinishReleases
from .duties.scheduler import PromoteDue
from .duties.stats import FlushStats
from .duties.time_limits import EnforceTimeLimits
from .exceptions import QwError
from .guard import Guard
from .keeper import Keeper
from .keeping import DEFAULT_MAX_RESULT_SIZE, DEFAULT_RESULT_TTL
from .lease import NameLease
from .lifecycle import Lifecycle, Waker
from .loading import load_code
from .options import ARGUMENTS, Settings
from .periodic import publish as publish_schedules
from .pool import Pool
from .process import CONTROL_SIGNALS, STOP_SIGNALS, Switch, describe_exit  # noqa: F401 - describe_exit: as before
from .stats import DEFAULT_HISTORY
from .stopping import URGENT_GRACE, Stopper  # noqa: F401 - URGENT_GRACE: importable from here, as before
from .supervisor import Supervisor
from .target import CodeTracker, TargetSpec
from .titles import set_title

log = logging.getLogger("qw.manager")

LEASE_TOKEN_ENV = "QW_LEASE_TOKEN"  # hands the name over to the process a USR2 re-executes
# Attributes read from the settings (manager.graceful_timeout, manager.limits...).
_SETTING_ATTRIBUTES = frozenset({*ARGUMENTS, "limits"})


class Manager:
    """Runs ``num_workers`` worker processes on ``target`` under the name ``name``.

    ``host``, ``port``, ``db``, ``num_workers`` (default: CPU count) and
    ``name`` (default: host name) are the original options; the rest are
    keyword-only: ``url``, ``namespace``, ``embedded``, ``wait_replicas``
    and ``wait_timeout_ms`` (as for :class:`~qw.Client`: in durable mode
    each worker waits for the replicas to confirm its acknowledgement and
    claim before it runs the job; see :mod:`qw.durable`); ``lease`` (seconds a silent manager keeps its name
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
    ``prefetch`` (jobs a worker claims per round trip; 1, the default,
    claims one at a time, None adapts the batch to the jobs; see the README);
    ``result_ttl`` (seconds a task job's record stays once it settles,
    unless the task or call says) and ``max_result_size`` (bytes of JSON
    a result may have); ``tasks`` (modules whose ``@qw.task`` functions and ``qw.Job`` classes
    the workers run; a module given as ``target`` is one too), ``queues``
    (named queues to serve, in order, ``"name:weight"`` for weighted;
    ``"all"`` is the shared queue) and ``allow`` (module patterns whose
    import-path jobs may run).
    Each option is described once, in :data:`qw.options.OPTIONS`.
    """

    def __init__(
        self,
        target: Optional[TargetSpec] = None,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        num_workers: Optional[int] = None,
        name: Optional[str] = None,
        *,
        url: Optional[str] = None,
        namespace: str = "",
        embedded: Optional[str] = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
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
        prefetch: Optional[int] = 1,
        result_ttl: int = DEFAULT_RESULT_TTL,
        max_result_size: int = DEFAULT_MAX_RESULT_SIZE,
        tasks: Optional[Sequence[str]] = None,
        queues: Optional[Sequence[str]] = None,
        allow: Sequence[str] = (),
    ) -> None:
        given = {name: value for name, value in locals().items() if name in ARGUMENTS}
        self.settings = Settings(given)
        # Code that cannot be imported stops us before any worker starts.
        self._code = CodeTracker()
        _function, self.settings.task_map = self._code.track(load_code, self.settings.target,
                                                              self.settings.tasks or ())
        self.name: str = self.settings.name
        self.client = client or Client(host, port, db, url=url, namespace=namespace, embedded=embedded,
                                       wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms)
        self.options_source = options_source
        self.paused = Switch()  # shared with every worker: set, they finish their job and claim no more
        self.stats = Keeper(self.client.keys, self.name, self.settings.history)
        self.lease_holder = NameLease(self.client, self.name, self.settings.lease,
                                      os.environ.pop(LEASE_TOKEN_ENV, None))
        self.inbox = Inbox(self.client, self.name)
        self._waker = Waker()
        self._lifecycle = Lifecycle(self._waker)
        self._guard = Guard(self.name)
        self._pool = Pool(self.client, self.name, self.settings, self.paused, self.stats, self._guard,
                          self._lifecycle)
        self._commands = Commands(self._pool, self.settings, self.paused, self._lifecycle, self._code,
                                  self.inbox, self._guard, options_source)
        self._health = PublishHealth(self.client, self.settings, self._pool, self.paused)
        self._flush = FlushStats(self.client, self.settings, self._pool, self.stats)
        self._pool.on_change = self._show_title
        self._commands.after_each = self._after_command
        self._metrics: Any = None
        self._supervisor: Optional[Supervisor] = None
        self._thread: Optional[threading.Thread] = None
        self._started = False

    def _duties(self) -> list[Duty]:
        """What the supervising loop runs each tick (in this order) or when a socket is readable."""
        settings, client, pool, name = self.settings, self.client, self._pool, self.name
        duties: list[Duty] = [
            PromoteDue(client, name),  # first: a due job must not wait behind the other duties' round trips
            RenewLease(client, self.lease_holder, settings, self._lifecycle, lambda: pool.workers),
            EnforceTimeLimits(pool, settings),
            self._health,
            self._flush,
            ReapDeparted(client, settings, name),
            CleanRecordIndexes(client),
            FinishReleases(client, settings),
            ControlInbox(self.inbox, self._commands.requests),
        ]
        if self._metrics is not None:
            from .duties.metrics import ServeMetrics  # only a manager that serves metrics needs it

            duties.append(ServeMetrics(self._metrics))
        return duties

    def __getattr__(self, attribute: str) -> Any:
        # The options as they are now (a reload or a resize changes some).
        if attribute in _SETTING_ATTRIBUTES:
            return getattr(self.__dict__["settings"], attribute)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    # -- public API ------------------------------------------------------------

    @property
    def heartbeat(self) -> float:
        """Seconds between the manager's periodic steps (lease renewal and the rest)."""
        return self.settings.heartbeat_interval

    @property
    def exit_code(self) -> int:
        """0, or 1 once the manager failed (its target cannot be imported, its name was lost...)."""
        return self._lifecycle.exit_code

    @property
    def workers(self) -> list[str]:
        """Names of the workers running now."""
        return self._pool.workers

    @property
    def metrics_url(self) -> Optional[str]:
        """Where the Prometheus metrics are served, once started with ``metrics_port``."""
        return self._metrics.url if self._metrics is not None else None

    @property
    def worker_pids(self) -> dict[str, int]:
        """Process id of each running worker, by name."""
        return self._pool.worker_pids

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
            publish_schedules(self.client, self.settings.task_map, self.name)
            if self.settings.metrics_port is not None:
                self._start_metrics()
            self._pool.recover_predecessor()
            self._pool.start()
        except BaseException:
            self.lease_holder.release()
            if self._metrics is not None:
                self._metrics.close()
            raise
        self._supervisor = Supervisor(self._pool, self._duties(), self._commands, self._lifecycle,
                                      self._guard)
        log.info("manager %s: started %d worker(s) on %s", self.name, self.settings.num_workers,
                 self.client.config.address())
        if self._metrics is not None:
            log.info("manager %s: Prometheus metrics on %s", self.name, self._metrics.url)
        self._show_title()

    def _start_metrics(self) -> None:
        from .metrics import MetricsServer, Source  # only a manager that serves metrics needs it

        source = Source(self.name, self.client, self._pool, self.stats, self.paused, self.collect_stats)
        self._metrics = MetricsServer(source, self.settings.metrics_host, self.settings.metrics_port)

    def request(self, op: str, **args: Any) -> None:
        """Ask for ``scale`` (``n=``), ``expand``, ``contract``, ``reload``, ``pause``, ``resume``,
        ``reexec`` or ``stop`` without waiting (safe in a signal handler and from other threads)."""
        self._commands.request(op, **args)

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
        self._lifecycle.request_stop(urgent)

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

    def collect_stats(self) -> None:
        """Take the workers' counts into :attr:`stats` (written to Redis each tick)."""
        self._flush.collect()

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
        if self._lifecycle.reexec and self.exit_code == 0:
            self._execute_again()
        return self.exit_code

    def _execute_again(self) -> None:
        # The name stays held (see qw.stopping); the new process takes it
        # over with the token, so no other manager reaps it meanwhile.
        argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
        os.environ[LEASE_TOKEN_ENV] = self.lease_holder.token
        log.warning("manager %s: executing %s again", self.name, " ".join(argv))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.execv(sys.executable, argv)

    def _supervise(self) -> None:
        assert self._supervisor is not None
        try:
            self._supervisor.run()
        finally:
            Stopper(self.client, self._pool, self.settings, self._lifecycle, self.lease_holder, self.stats,
                    self._guard).shutdown()
            self._waker.close()
            self._supervisor.close()

    def _after_command(self) -> None:
        self._show_title()
        self._guard(self._health.run)  # `qw-client info` shows the change at once

    def _show_title(self) -> None:
        state = ", paused" if self.paused else ""
        retiring = self._pool.retiring_count()
        extra = f", {retiring} leaving" if retiring else ""
        set_title(f"qw-manager {self.name}: {self._pool.active_count()} workers{extra}{state}")

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only record the request: the supervising loop does the work.
        operation = {signal.SIGTTIN: "expand", signal.SIGTTOU: "contract", signal.SIGHUP: "reload",
                     signal.SIGUSR2: "reexec"}.get(signal.Signals(signum))
        if operation and not self._lifecycle.stopping:
            self.request(operation)
        elif not operation:
            self.request_stop(urgent=signum == signal.SIGINT or self._lifecycle.stopping)
