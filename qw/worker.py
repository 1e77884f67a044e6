"""The worker process: claim a job, run the target on it, settle it, repeat."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import random
import resource
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

import redis

from . import hooks, recovery
from .batching import BatchSize
from .breakdown import Breakdown
from .call import TASK_FIELD
from .claim import FAILED, REFUSED, Claimer, Job
from .client import Client
from .connection import SOCKET_TIMEOUT, TRANSIENT, is_transient  # noqa: F401 - importable from here too
from .dispatch import Dispatcher, Outcome, Resolved, outcome
from .exceptions import Refused, TargetError
from .keys import worker_name
from .process import (  # noqa: F401 - importable from here too, as before
    CONTROL_SIGNALS,
    EXIT_ORPHANED,
    EXIT_TARGET,
    STOP_SIGNALS,
    Limits,
    Shared,
    Switch,
    cancel_digest,
)
from .queues import QueueSpec
from .results import ResultError, encode_result, keep_for
from .target import TargetSpec, resolve
from .tasks import Task
from .titles import set_title

log = logging.getLogger("qw.worker")

T = TypeVar("T")

PROCESSED, FAILED_FOR_GOOD, RETRIED = 0, 1, 2  # indexes into qw.stats.OUTCOMES
ORIGIN_FIELD = "qw:origin"  # the queue a claim took the job from (full key name)
# With a prefetch, finished jobs are acknowledged together with the next
# claim, or as soon as the jobs run since the last round trip took this long:
# the work a worker's death can make run again is bounded in time too.
ACK_WITHIN = 0.002
_current: Optional[Job] = None


def current_job() -> Optional[Job]:
    """The job this worker process is running now (id, attempt, data), else None.

    A target that must be idempotent can key its side effects on
    ``current_job().id`` and see from ``current_job().attempt`` whether this
    is a repeat.
    """
    return _current


class JobTimeout(Exception):
    """Raised inside a target that ran past its time limit."""


class Cancelled(BaseException):
    """Raised in a running job whose cancel its manager passed on (SIGUSR1): the run ends, not retried."""


class Interrupted(BaseException):
    """Raised inside a target when the worker must stop at once; the job is requeued."""


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
        target: Optional[TargetSpec],
        manager_name: Optional[str] = None,
        timeout: float = 10,
        *,
        name: Optional[str] = None,
        poll_interval: float = 0.05,
        limits: Optional[Limits] = None,
        paused: Optional[Switch] = None,
        prefetch: Optional[int] = 1,
        tasks: Optional[Mapping[str, Task]] = None,
        allow: Sequence[str] = (),
        queues: Optional[list[QueueSpec]] = None,
    ) -> None:
        self.manager_name = manager_name or socket.gethostname()
        super().__init__(name=name or worker_name(self.manager_name, uuid.uuid4().hex[:8]))
        self.client = client
        self.target = target  # None: tasks only
        self.tasks = dict(tasks or {})
        self.allow = tuple(allow)
        self.queues = queues  # named queues, in order (qw.queues.parse_queues); None: all:jobs
        self.timeout = timeout
        # Never 0 (BLMOVE would block forever), and well inside the socket
        # timeout, or a quiet wait would look like a dead connection.
        self.poll_interval = max(0.001, min(poll_interval, timeout, SOCKET_TIMEOUT / 2))
        self.limits = limits or Limits()
        # Counts per task and named queue: the rows are fixed before the fork.
        named = [name for name, _weight in queues or ()]
        self.shared = Shared(Breakdown.build(list(self.tasks), named, client.keys))
        self.paused = paused if paused is not None else Switch()  # set: finish the job, claim no more
        if prefetch is not None and prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.prefetch = prefetch  # jobs claimed per round trip; None: adapted (qw.batching)
        self._creator_pid = os.getpid()
        self._forked_by_creator = True
        self._stopping = False
        self._running = False
        self._claimer: Optional[Claimer] = None
        self._dispatcher: Optional[Dispatcher] = None
        self._outage = False

    # -- the process ---------------------------------------------------------

    def run(self) -> None:
        """The worker's main loop (runs in the child process)."""
        # Forked straight from our manager, its death shows as a new parent pid;
        # started through a fork server or spawn, we watch its pid instead.
        self._forked_by_creator = os.getppid() == self._creator_pid
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGUSR1, self._on_cancel)
        for signum in CONTROL_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_interrupt if signum == signal.SIGINT else self._on_stop_signal)
        # The manager blocks these while forking, so that none reaches the
        # handlers it left behind in this process; ours are in place now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS + CONTROL_SIGNALS)
        threading.Thread(target=self._watch_manager, name="qw-manager-watch", daemon=True).start()
        try:
            claimer, target = self._setup()
        except TargetError as exc:
            log.error("%s: %s", self.name, exc)
            os._exit(EXIT_TARGET)
        hooks.run("start")  # after the fork, before the first claim (Django: drop inherited connections)
        self._retrying(self.client.register_worker, self.manager_name, self.name)
        self._show_title()
        log.debug("%s: started (pid %d)", self.name, os.getpid())
        try:
            if self.prefetch != 1:
                self._loop_prefetching(claimer, target)
            else:
                self._loop(claimer, target)
        except Interrupted:
            log.warning("%s: interrupted; its job goes back to the queue", self.name)
        finally:
            self._best_effort(self.client.deregister_worker, self.manager_name, self.name)
            hooks.run("stop")
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
            self._retrying(claimer.ack, job)
        return job

    # -- the loop --------------------------------------------------------------

    def _setup(self) -> tuple[Claimer, Dispatcher]:
        if self._claimer is None or self._dispatcher is None:
            target = resolve(self.target) if self.target is not None else None
            self._dispatcher = Dispatcher(target, self.tasks, self.allow)
            client = self.client
            self._claimer = Claimer(client.redis, client.scripts, client.keys, self.manager_name, self.name,
                                    blocking=client.config.connect(), direct=True, queues=self.queues,
                                    durability=client.durability)
        return self._claimer, self._dispatcher

    def _loop(self, claimer: Claimer, target: Dispatcher) -> None:
        ack: Optional[Job] = None  # sent with the next claim: one round trip per job
        done = 0
        paused = self.paused
        while not self._should_stop():
            if paused:
                if ack:
                    self._retrying(claimer.ack, ack)
                    ack = None
                self._hold()
                continue
            # Safe to repeat: an ack already applied is refused as a no-op,
            # and a claim whose reply was lost left its id at the right end
            # of our list, where the repeated claim finds it.
            job = self._retrying(claimer.claim, ack)
            ack = None
            while job is None and not self._should_stop() and not paused:
                job = self._retrying(claimer.wait_and_claim, self.poll_interval)
            if job is None:
                continue
            if self._run_job(claimer, target, job):
                ack = job
            done += 1
            if self._used_up(done):
                break
        if ack:
            self._retrying(claimer.ack, ack)

    def _loop_prefetching(self, claimer: Claimer, target: Dispatcher) -> None:
        """:meth:`_loop` claiming up to ``prefetch`` jobs per round trip (None: a size that adapts,
        :class:`~qw.batching.BatchSize`).

        The jobs in hand are all claimed (each used an attempt); finished
        ones are acknowledged with the next claim, or once ACK_WITHIN of work
        has passed since the last round trip. Before leaving or pausing, the
        worker acknowledges what it finished and gives back what it did not
        start; so it does after a long job when the size adapts.
        """
        acks: list[Job] = []
        in_hand: deque[Job] = deque()
        paused = self.paused
        done = 0
        used_up = False
        worked = 0.0  # seconds of jobs run since the last round trip
        sizer = BatchSize(self.prefetch)
        wanted = got = ran = 0  # the last claim: jobs asked for, claimed, run since
        spent = 0.0  # seconds those runs took
        try:
            while True:
                if in_hand:
                    job = in_hand.popleft()
                    began = time.perf_counter()
                    if self._run_job(claimer, target, job):
                        acks.append(job)
                    done += 1
                    took = time.perf_counter() - began
                    worked += took
                    ran += 1
                    spent += took
                    used_up = used_up or self._used_up(done)
                    leaving = self._should_stop() or paused or used_up
                    hostage = bool(in_hand) and sizer.long_job(took)
                    if acks and (worked >= ACK_WITHIN or leaving or hostage):
                        self._retrying(claimer.claim_many, acks, 0)
                        acks.clear()
                        worked = 0.0
                    if (leaving or hostage) and in_hand:
                        self._give_back(in_hand)
                    continue
                if ran:
                    sizer.claimed(wanted, got, ran, spent)
                    ran, spent = 0, 0.0
                if self._should_stop() or used_up:
                    if acks:
                        self._retrying(claimer.claim_many, acks, 0)
                        acks.clear()
                    break
                if paused:
                    if acks:
                        self._retrying(claimer.claim_many, acks, 0)
                        acks.clear()
                    self._hold()
                    continue
                # Safe to repeat: acknowledgements already applied are
                # refused as no-ops, and jobs claimed by a call whose reply
                # was lost sit at the right end of our list, claimed again.
                wanted = sizer.size
                in_hand.extend(self._retrying(claimer.claim_many, acks, wanted))
                acks.clear()
                worked = 0.0
                while not in_hand and not self._should_stop() and not paused:
                    in_hand.extend(self._retrying(claimer.wait_and_claim_many, self.poll_interval, wanted))
                got = len(in_hand)
        finally:
            # Also when interrupted (INT): a finished job must not run again.
            if acks:
                self._best_effort(claimer.claim_many, acks, 0)

    def _give_back(self, in_hand: deque[Job]) -> None:
        # Jobs claimed but not started go back to the head of their queues
        # (jobs queued to this worker stay in its list), their attempt given back.
        self._retrying(lambda: recovery.requeue(self.client, self.manager_name, self.name, keep_own=True))
        in_hand.clear()

    def _hold(self) -> None:
        """Wait while paused, saying so to the manager (no claim of ours is in flight)."""
        while self.paused and not self._should_stop():
            self.shared.holding.value = 1
            time.sleep(0.05)
        self.shared.holding.value = 0

    def _run_job(self, claimer: Claimer, target: Dispatcher, job: Job) -> bool:
        """Run the job's task or the target; True when it returned, else the failure is settled here."""
        global _current
        breakdown = self.shared.breakdown  # None without tasks or named queues: plain jobs pay this check
        try:
            call = target.resolve(job.meta)
        except Refused as exc:  # an unknown task, a disallowed import path: no retry can help
            # By the name it gives: a known task with bad arguments still counts as that task.
            meta = job.meta
            row = 0 if breakdown is None else breakdown.row(meta.get(TASK_FIELD), meta.get(ORIGIN_FIELD))
            self._settle_failure(claimer, job, str(exc), "", None, 0.0, outcome(exc), row=row)
            return False
        row = 0 if breakdown is None else breakdown.row(_task_name(call), job.meta.get(ORIGIN_FIELD))
        limit = job.timeout or call.timeout or self.limits.job_timeout
        if self.shared.cancel.value and self.shared.cancel.value == cancel_digest(job.id):
            self.shared.cancel.value = 0  # cancelled while held in a prefetch: never started
            self._retrying(claimer.cancelled, job, self.limits.result_ttl)
            return False
        _current = job
        job.claimer = claimer
        if self.prefetch != 1:  # the others it holds were not started: see Shared.running
            self.shared.running.value = cancel_digest(job.id)
        self.shared.started.value = started = time.time()
        queued_at = job.meta.get("qw:queued_at")
        wait = started - float(queued_at) if queued_at else None
        begun = time.perf_counter()
        self.shared.jobs.value += 1
        self.shared.deadline.value = time.monotonic() + limit if limit else 0.0
        self._running = True
        around = hooks.has("before") or hooks.has("after")  # plain workers pay nothing more
        try:
            if around:
                hooks.run("before")
            if limit:
                signal.setitimer(signal.ITIMER_REAL, limit)
            value = call.run(job.id, job.data, job)
        except Cancelled:
            log.info("%s: job %s cancelled while it ran", self.name, job.id)
            self._retrying(claimer.cancelled, job, self.limits.result_ttl)
            return False
        except JobTimeout:
            self._settle_failure(claimer, job, f"JobTimeout: ran past its time limit of {limit:g} s",
                                 traceback.format_exc(), wait, time.perf_counter() - begun,
                                 max_attempts=call.max_attempts, row=row)
            return False
        except (Exception, SystemExit) as exc:  # a job's failure must never end the worker
            # Abort fails it now, Retry asks for its own delay, the rest back off.
            run = time.perf_counter() - begun
            self._settle_failure(claimer, job, "", traceback.format_exc(), wait, run, outcome(exc),
                                 call.max_attempts, row=row)
            return False
        finally:
            if limit:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if around:
                hooks.run("after")
            self._running = False
            self.shared.running.value = 0
            self.shared.started.value = 0.0
            self.shared.deadline.value = 0.0
            _current = None
        run = time.perf_counter() - begun
        job.claimer = None
        if job.moved:  # on its next queue now (Job.complete): nothing to acknowledge
            self.shared.tally.record(PROCESSED, wait, run)
            return False
        task_ttl = call.task.result_ttl if call.task is not None else None
        keep = keep_for(job.meta, task_ttl, self.limits.result_ttl)
        if keep:
            try:
                job.result = encode_result(value, self.limits.max_result_size)
            except ResultError as exc:  # retrying would return the same: fail it now, saying why
                self._settle_failure(claimer, job, "", "", wait, run, Outcome(str(exc), retry=False), row=row)
                return False
            job.keep = keep
        self.shared.tally.record(PROCESSED, wait, run)
        if breakdown is not None:
            breakdown.record(row, PROCESSED, wait, run)
        return True

    def _settle_failure(self, claimer: Claimer, job: Job, error: str, tb: str, wait: Optional[float],
                        run: float, how: Optional[Outcome] = None,
                        max_attempts: Optional[int] = None, row: int = 0) -> None:
        """Retry or fail a run that did not return, and count it (into ``row`` of the breakdown)."""
        policy = self.limits.retry
        if how is not None:
            error = error or how.error
        delay: Optional[float] = None
        if how is None or how.retry:
            delay = how.delay if how is not None and how.delay is not None else policy.delay(job.attempt)
        allowed = max_attempts or policy.max_attempts
        result = self._retrying(claimer.fail, job, error, tb, None, allowed, delay)
        if result != REFUSED:
            how_it_ended = FAILED_FOR_GOOD if result == FAILED else RETRIED
            self.shared.tally.record(how_it_ended, wait, run)
            if self.shared.breakdown is not None:
                self.shared.breakdown.record(row, how_it_ended, wait, run)
        if result == REFUSED:
            log.warning("%s: job %s attempt %d failed, but it was requeued meanwhile: %s",
                        self.name, job.id, job.attempt, error)
        elif result == FAILED:
            log.warning("%s: job %s failed for good on attempt %d: %s", self.name, job.id, job.attempt, error)
        else:
            log.warning("%s: job %s attempt %d failed, retry in %.1f s: %s",
                        self.name, job.id, job.attempt, delay or 0.0, error)

    def _used_up(self, done: int) -> bool:
        """True when this worker should make way for a fresh one (recycling)."""
        if self.limits.max_jobs and done >= self.limits.max_jobs:
            log.info("%s: recycled after %d jobs", self.name, done)
            return True
        if self.limits.max_memory_mb and rss_mb() > self.limits.max_memory_mb:
            log.info("%s: recycled at %.0f MB resident", self.name, rss_mb())
            return True
        return False

    def _should_stop(self) -> bool:
        return self._stopping or not self._manager_alive()

    def _manager_alive(self) -> bool:
        if os.getpid() == self._creator_pid:  # run() or run_once() called in the creating process
            return True
        if self._forked_by_creator:
            return os.getppid() == self._creator_pid
        try:
            os.kill(self._creator_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the pid was reused by another user's process
            return False
        return True

    # -- signals -------------------------------------------------------------------

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        # INT means now: leave the running job (it stays in our list and the
        # manager requeues it, giving its attempt back).
        self._stopping = True
        if self._running:
            raise Interrupted()

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self._running:
            raise JobTimeout()

    def _on_cancel(self, signum: int, frame: Any) -> None:
        # Only the run the manager meant: the job may have ended meanwhile.
        job = _current
        if self._running and job is not None and self.shared.cancel.value == cancel_digest(job.id):
            self.shared.cancel.value = 0
            raise Cancelled()

    def _watch_manager(self) -> None:
        # A worker must not outlive its manager: nobody would heartbeat for it,
        # and its job would be requeued and run twice. Between jobs the loop
        # notices by itself; this catches a manager that died mid-job.
        while True:
            time.sleep(0.5)
            self._show_title()
            if not self._manager_alive():
                time.sleep(0.5)  # give a loop that is between jobs the chance to leave cleanly
                log.error("%s: manager is gone, exiting", self.name)
                os._exit(EXIT_ORPHANED)

    def _show_title(self) -> None:
        job = _current
        if job is not None and self.shared.started.value:
            busy = time.time() - self.shared.started.value
            set_title(f"qw-worker {self.name}: job {job.id} for {busy:.0f}s")
        else:
            set_title(f"qw-worker {self.name}: {'paused' if self.paused else 'idle'}")

    # -- Redis trouble -----------------------------------------------------------

    def _retrying(self, call: Callable[..., T], *args: Any) -> T:
        """Run ``call`` until Redis answers, backing off with jitter; log changes once."""
        delay = 0.05
        while True:
            try:
                result = call(*args)
            except redis.RedisError as exc:
                if not is_transient(exc):
                    raise
                if not self._outage:
                    log.warning("%s: Redis unavailable (%s); retrying", self.name, exc)
                    self._outage = True
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            self.shared.last_ok.value = time.time()
            if self._outage:
                log.warning("%s: Redis reachable again", self.name)
                self._outage = False
            return result

    def _best_effort(self, call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:  # leaving anyway: the manager cleans up after us
            log.debug("%s: %s", self.name, exc)


def _task_name(call: Resolved) -> Optional[str]:
    """The registered name of the task a job runs, or None for a plain job or a bare import path."""
    return call.task.name if call.task is not None else None


def rss_mb() -> float:
    """Resident memory of this process in MB."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
