"""The worker process: claim a job, run the target on it, settle it, repeat."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import random
import signal
import socket
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Optional, TypeVar

import redis

from .claim import Claimer, Job
from .client import Client
from .exceptions import ConnectionFailed, TargetError
from .keys import worker_name
from .target import Target, TargetSpec, resolve

log = logging.getLogger("qw.worker")

T = TypeVar("T")

EXIT_TARGET = 3  # the target could not be imported: respawning would not help
EXIT_ORPHANED = 4  # the manager vanished while a job was running
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
# Redis errors after which the same call is safe to repeat (see each caller).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, ConnectionFailed)


class Worker(multiprocessing.Process):
    """A process that runs ``target(job_id, job_data)`` on jobs, one at a time.

    ``timeout`` (the original option) bounds one blocking wait on an empty
    queue; qw waits in slices of ``poll_interval`` seconds (0.05) so that a
    job queued to this worker's manager or to the worker itself starts at
    once even while ``all:jobs`` is empty.
    """

    def __init__(
        self,
        client: Client,
        target: TargetSpec,
        manager_name: Optional[str] = None,
        timeout: float = 10,
        *,
        name: Optional[str] = None,
        poll_interval: float = 0.05,
    ) -> None:
        self.manager_name = manager_name or socket.gethostname()
        super().__init__(name=name or worker_name(self.manager_name, uuid.uuid4().hex[:8]))
        self.client = client
        self.target = target
        self.timeout = timeout
        self.poll_interval = min(poll_interval, timeout)
        self._creator_pid = os.getpid()
        self._stopping = False
        self._claimer: Optional[Claimer] = None
        self._target: Optional[Target] = None
        self._outage = False

    # -- the process ---------------------------------------------------------

    def run(self) -> None:
        """The worker's main loop (runs in the child process)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_stop_signal)
        # The manager blocks these while forking, so that none reaches the
        # handlers it left behind in this process; ours are in place now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        threading.Thread(target=self._watch_manager, name="qw-manager-watch", daemon=True).start()
        try:
            claimer, target = self._setup()
        except TargetError as exc:
            log.error("%s: %s", self.name, exc)
            os._exit(EXIT_TARGET)
        self._retrying(self.client.register_worker, self.manager_name, self.name)
        log.debug("%s: started (pid %d)", self.name, os.getpid())
        try:
            self._loop(claimer, target)
        finally:
            self._best_effort(lambda: self.client.deregister_worker(self.manager_name, self.name))
            log.debug("%s: stopped", self.name)

    def shutdown(self) -> None:
        """Ask the worker to stop once its current job is done."""
        if self.pid is not None and os.getpid() != self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        else:
            self._stopping = True

    def run_once(self, block: float = 0.0) -> Optional[Job]:
        """Claim, run and settle at most one job in this process; return it.

        Waits up to ``block`` seconds when the queues are empty. Meant for
        tests and embedding; ``start()`` runs the real loop in a new process.
        """
        claimer, target = self._setup()
        job = self._retrying(claimer.claim)
        if job is None and block > 0:
            moved = self._retrying(claimer.wait, block)
            job = self._retrying(claimer.claim, None, moved) if moved else None
        if job is not None and self._run_job(claimer, target, job):
            self._retrying(claimer.ack, job.id)
        return job

    # -- the loop --------------------------------------------------------------

    def _setup(self) -> tuple[Claimer, Target]:
        if self._claimer is None or self._target is None:
            self._target = resolve(self.target)
            client = self.client
            self._claimer = Claimer(client.redis, client.scripts, client.keys, self.manager_name, self.name)
        return self._claimer, self._target

    def _loop(self, claimer: Claimer, target: Target) -> None:
        ack: Optional[str] = None  # sent with the next claim: one round trip per job
        moved = ""
        while moved or not self._should_stop():
            # Safe to repeat: an ack of an id already gone is a no-op, and a
            # claim whose reply was lost left its id at the right end of our
            # list, where the repeated claim finds it.
            job = self._retrying(claimer.claim, ack, moved)
            ack, moved = None, ""
            if job is None:
                if not self._should_stop():
                    moved = self._retrying(claimer.wait, self.poll_interval)
                continue
            if self._run_job(claimer, target, job):
                ack = job.id
        if ack:
            self._retrying(claimer.ack, ack)

    def _run_job(self, claimer: Claimer, target: Target, job: Job) -> bool:
        """Run the target; True when it returned, else the job is failed here."""
        try:
            target(job.id, job.data)
        except (Exception, SystemExit) as exc:  # a job's failure must never end the worker
            error = " ".join(f"{type(exc).__name__}: {exc}".split())
            log.warning("%s: job %s failed: %s", self.name, job.id, error)
            tb = traceback.format_exc()
            self._retrying(claimer.fail, job.id, error, tb)
            return False
        return True

    def _should_stop(self) -> bool:
        return self._stopping or os.getppid() != self._creator_pid

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _watch_manager(self) -> None:
        # A worker must not outlive its manager: nobody would heartbeat for it,
        # and its job would be requeued and run twice. Between jobs the loop
        # notices by itself; this catches a manager that died mid-job.
        while True:
            time.sleep(0.5)
            if os.getppid() != self._creator_pid:
                time.sleep(0.5)  # give a loop that is between jobs the chance to leave cleanly
                log.error("%s: manager is gone, exiting", self.name)
                os._exit(EXIT_ORPHANED)

    # -- Redis trouble -----------------------------------------------------------

    def _retrying(self, call: Callable[..., T], *args: Any) -> T:
        """Run ``call`` until Redis answers, backing off with jitter; log changes once."""
        delay = 0.05
        while True:
            try:
                result = call(*args)
            except TRANSIENT as exc:
                if not self._outage:
                    log.warning("%s: Redis unavailable (%s); retrying", self.name, exc)
                    self._outage = True
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            if self._outage:
                log.warning("%s: Redis reachable again", self.name)
                self._outage = False
            return result

    def _best_effort(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:  # leaving anyway: the manager cleans up after us
            log.debug("%s: %s", self.name, exc)
