"""RQ: ``rq worker`` processes with SimpleWorker, which runs jobs in its own process.

RQ's default Worker forks a child per job, which is slower by design; it is not measured.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from typing import Callable, Optional

import bench_job
from redis import Redis
from rq import Queue

PACKAGES = ["rq", "redis", "hiredis"]
VERSIONS = ["rq", "redis", "hiredis"]
HAS_BULK = True
WORKER_CONFIG = "N x rq worker --worker-class SimpleWorker (no fork per job)"
SINGLE_API = "Queue.enqueue"
BULK_API = "Queue.enqueue_many (one pipeline)"
CALL_API = "`Queue.enqueue(...).latest_result(timeout=10)`: XREAD BLOCK on the job's result stream"
QUEUE = "bench"

_queue: Optional[Queue] = None
_scheduler: list[str] = []  # the lateness run's workers also run RQ's scheduler


def noop(mode: int) -> None:
    """The job: report that it ran."""
    bench_job.ran(mode)


def setup(host: str, port: int, variant: str) -> None:
    """Connect the producer's queue."""
    global _queue
    _queue = Queue(QUEUE, connection=Redis(host, port))
    if variant == "lateness":
        _scheduler[:] = ["--with-scheduler"]


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """``processes`` independent ``rq worker`` processes."""
    rq = os.path.join(os.path.dirname(sys.executable), "rq")
    return [[rq, "worker", "--url", f"redis://{host}:{port}/0", "--worker-class", "rq.worker.SimpleWorker",
             "--quiet", "--name", f"bench-{i}", *_scheduler, QUEUE] for i in range(processes)]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one call at a time."""
    assert _queue is not None
    enqueue = _queue.enqueue
    for _ in range(count):
        if before_each:
            before_each()
        enqueue(noop, mode)


def queue_delayed(delay: float, mode: int) -> float:
    """``Queue.enqueue_in``, which needs a worker started ``--with-scheduler``; the due time."""
    assert _queue is not None
    due = time.time() + delay
    _queue.enqueue_in(timedelta(seconds=delay), noop, mode)
    return due


def queue_bulk(count: int) -> None:
    """Queue ``count`` jobs with the bulk API."""
    assert _queue is not None
    _queue.enqueue_many([Queue.prepare_data(noop, (bench_job.COUNT,)) for _ in range(count)])


def call_job(mode: int) -> str:
    """The call workload's job: report that it ran, return a small result."""
    bench_job.ran(mode)
    return bench_job.RESULT


def call_single(count: int) -> list[float]:
    """Queue a job and block on its result stream (XREAD BLOCK), ``count`` times; each call's seconds."""
    assert _queue is not None
    enqueue, clock = _queue.enqueue, time.perf_counter
    durations = []
    for _ in range(count):
        started = clock()
        result = enqueue(call_job, bench_job.COUNT).latest_result(timeout=10)
        durations.append(clock() - started)
        if result is None or result.return_value != bench_job.RESULT:
            raise SystemExit(f"RQ's latest_result gave {result!r}")
    return durations
