"""How many jobs a prefetching worker claims in its next round trip.

A fixed ``--prefetch=N`` claims N each time. The default adapts: the batch
starts at one job and doubles while the queue has as many as asked for and
a batch's jobs take less than :data:`BATCH_WORK` seconds together, up to
:data:`MOST`; it shrinks to what fits in that time when jobs get slower, and
to one job as soon as a job runs :data:`LONG_JOB` or more (the worker then
gives back the jobs it holds and has not started, so a long job holds no
other hostage). Tiny jobs so cost a round trip per batch, long ones claim
one at a time, and what a worker holds unstarted is bounded in time too.
"""

from __future__ import annotations

from typing import Optional

MOST = 32  # jobs in one adaptive batch
BATCH_WORK = 0.005  # seconds of work an adaptive batch may hold
LONG_JOB = 0.05  # a job this long makes the next batch one job, and gives back those held


class BatchSize:
    """The size of the next claim; ``fixed`` (a number) or None to adapt."""

    def __init__(self, fixed: Optional[int] = None) -> None:
        self.fixed = fixed
        self.size = fixed or 1

    @property
    def most(self) -> int:
        """The most jobs a claim can hold: what the census reads at a worker's list's right end."""
        return self.fixed or MOST

    def claimed(self, wanted: int, got: int, ran: int, seconds: float) -> None:
        """A batch is done: ``got`` of ``wanted`` jobs claimed, ``ran`` of them run in ``seconds``."""
        if self.fixed or not ran:
            return
        per_job = seconds / ran
        if per_job >= LONG_JOB:
            self.size = 1
            return
        fits = MOST if per_job <= 0 else max(1, min(MOST, int(BATCH_WORK / per_job)))
        if got >= wanted:  # a deep queue: room to grow
            self.size = min(fits, self.size * 2)
        else:
            self.size = min(fits, self.size)

    def long_job(self, seconds: float) -> bool:
        """True when a job this long should end the batch (adaptive only); the next claims one job."""
        if self.fixed or seconds < LONG_JOB:
            return False
        self.size = 1
        return True
