"""What a manager and its worker processes agree on: exit codes, signals, limits, shared memory."""

from __future__ import annotations

import multiprocessing
import signal
import time
import zlib
from dataclasses import dataclass, field
from typing import Optional

from .breakdown import Breakdown
from .keeping import DEFAULT_MAX_RESULT_SIZE, DEFAULT_RESULT_TTL
from .retry import RetryPolicy
from .stats import Tally

EXIT_TARGET = 3  # the target could not be imported: respawning would not help
EXIT_ORPHANED = 4  # the manager vanished while a job was running
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# The manager's control signals; a worker ignores them: one sent to the whole
# process group (a terminal hangup, `kill -HUP -<pgid>`) is the manager's
# business, and the manager tells its workers what to do.
CONTROL_SIGNALS = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2)


@dataclass
class Limits:
    """What a worker enforces on itself: attempts, time limit, recycling."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    job_timeout: Optional[float] = None  # seconds; a job's own timeout wins
    max_jobs: Optional[int] = None  # replace the worker after this many jobs
    max_memory_mb: Optional[float] = None  # ... or once its RSS is past this
    result_ttl: int = DEFAULT_RESULT_TTL  # seconds a task job's record stays, unless it says
    max_result_size: int = DEFAULT_MAX_RESULT_SIZE  # bytes of JSON a result may have


class Shared:
    """Numbers a worker publishes to its manager through shared memory.

    ``breakdown`` holds its counts per task and named queue, allocated before
    the fork from what the manager loaded; None when it has neither.
    """

    def __init__(self, breakdown: Optional[Breakdown] = None) -> None:
        ctx = multiprocessing.get_context("fork")
        self.deadline = ctx.Value("d", 0.0, lock=False)  # time.monotonic() bound of the running job
        self.started = ctx.Value("d", 0.0, lock=False)  # time.time() the running job started; 0: idle
        self.last_ok = ctx.Value("d", time.time(), lock=False)  # last time Redis answered the worker
        self.jobs = ctx.Value("i", 0, lock=False)  # jobs started by this worker process
        self.tally = Tally()  # jobs settled, wait and run times
        self.breakdown = breakdown  # the same per task and per named queue
        self.holding = ctx.Value("b", 0, lock=False)  # 1: paused, and no claim of ours is in flight
        self.cancel = ctx.Value("q", 0, lock=False)  # cancel_digest of the job the manager cancels; 0: none
        # cancel_digest of the job a prefetching worker runs (0: none): if it
        # dies, only that one of the jobs it holds is charged an attempt.
        self.running = ctx.Value("q", 0, lock=False)


class Switch:
    """A flag a manager shares with all its workers, such as "paused"."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("fork").Value("b", 0, lock=False)

    def __bool__(self) -> bool:
        return bool(self._value.value)

    def set(self, on: bool) -> None:
        self._value.value = 1 if on else 0


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


def cancel_digest(job_id: str) -> int:
    """A nonzero 63-bit number for a job id: how a manager names, in shared memory, the run to cancel."""
    return (zlib.crc32(job_id.encode()) << 31 | zlib.adler32(job_id.encode()) >> 1) or 1
