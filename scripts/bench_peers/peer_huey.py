"""Huey with RedisHuey (blocking dequeue): ``huey_consumer -k process -w N``.

The call workload (variant ``call``) turns on ``notify_result``, so that a
blocking ``result.get`` waits with BLPOP rather than polling (Huey's default,
from 50 ms and backing off), in the producer and the consumer alike.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

import bench_job
from huey import RedisHuey

PACKAGES = ["huey", "redis", "hiredis"]
VERSIONS = ["huey", "redis", "hiredis"]
HAS_BULK = False  # task.map() enqueues one task at a time
WORKER_CONFIG = "huey_consumer -k process -w N -n (no periodic tasks)"
SINGLE_API = "calling the task"
BULK_API = "n/a (task.map enqueues one task at a time)"
CALL_API = "`task(...).get(blocking=True, timeout=10)`, `notify_result=True`: BLPOP"
BROKER_ENV = "QW_BENCH_BROKER"  # the broker URL, set by the driver for itself and the workers

huey = RedisHuey("bench", url=os.environ[BROKER_ENV],
                 notify_result=os.environ.get(bench_job.VARIANT_ENV) == "call")


@huey.task()
def noop(mode: int) -> None:
    """The job: report that it ran."""
    bench_job.ran(mode)


def setup(host: str, port: int, variant: str) -> None:
    """Check the broker (its URL came from the environment, set by the driver)."""
    huey.storage.conn.ping()


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """One consumer with ``processes`` worker processes."""
    exe = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
    return [[exe, "peer_huey.huey", "-k", "process", "-w", str(processes), "-n", "-q"]]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one call at a time."""
    task = noop
    for _ in range(count):
        if before_each:
            before_each()
        task(mode)


def queue_delayed(delay: float, mode: int) -> float:
    """``task.schedule(delay=...)``: the consumer's scheduler moves it when due; the due time."""
    due = time.time() + delay
    noop.schedule(args=(mode,), delay=delay)
    return due


def queue_bulk(count: int) -> None:
    """No bulk API: the drain pre-queues with the single call."""
    queue_single(count, bench_job.COUNT)


@huey.task()
def call_job(mode: int) -> str:
    """The call workload's job: report that it ran, return a small result."""
    bench_job.ran(mode)
    return bench_job.RESULT


def call_single(count: int) -> list[float]:
    """Queue a task and block on its result, ``count`` times; each call's seconds."""
    task, clock = call_job, time.perf_counter
    durations = []
    for _ in range(count):
        started = clock()
        value = task(bench_job.COUNT).get(blocking=True, timeout=10)
        durations.append(clock() - started)
        if value != bench_job.RESULT:
            raise SystemExit(f"Result.get returned {value!r}")
    return durations
