"""Celery with the Redis broker: ``celery worker -P solo`` processes, no result backend.

The call workload (variant ``call``) configures the Redis result backend, on
the same Redis, in the producer and the workers alike.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

import bench_job
from celery import Celery, group

PACKAGES = ["celery[redis]", "hiredis"]
VERSIONS = ["celery", "kombu", "redis", "hiredis"]
HAS_BULK = True
WORKER_CONFIG = ("N x celery worker -P solo (prefetch multiplier 4, the default), "
                 "--without-gossip --without-mingle --without-heartbeat")
SINGLE_API = "task.delay"
BULK_API = "group(...).apply_async()"
CALL_API = "`task.delay(...).get(timeout=10)`: the Redis result backend (pub/sub)"
BROKER_ENV = "QW_BENCH_BROKER"  # the broker URL, set by the driver for itself and the workers

app = Celery("bench", broker=os.environ[BROKER_ENV])
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                task_default_queue="bench")
if os.environ.get(bench_job.VARIANT_ENV) == "call":
    app.conf.update(result_backend=os.environ[BROKER_ENV])


@app.task(name="noop")
def noop(mode: int) -> None:
    """The job: report that it ran."""
    bench_job.ran(mode)


def setup(host: str, port: int, variant: str) -> None:
    """Connect to the broker (its URL came from the environment, set by the driver)."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """``processes`` independent solo-pool workers."""
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    return [[celery, "-A", "peer_celery", "worker", "-P", "solo", "-l", "WARNING", "-Q", "bench",
             "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            for i in range(processes)]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one call at a time."""
    delay = noop.delay
    for _ in range(count):
        if before_each:
            before_each()
        delay(mode)


def queue_delayed(delay: float, mode: int) -> float:
    """``apply_async(countdown=delay)``; the due time."""
    due = time.time() + delay
    noop.apply_async((mode,), countdown=delay)
    return due


def queue_bulk(count: int) -> None:
    """Queue ``count`` jobs with the bulk API."""
    group(noop.s(bench_job.COUNT) for _ in range(count)).apply_async()


@app.task(name="call_job")
def call_job(mode: int) -> str:
    """The call workload's job: report that it ran, return a small result."""
    bench_job.ran(mode)
    return bench_job.RESULT


def call_single(count: int) -> list[float]:
    """Queue a job and wait for its result (``AsyncResult.get``), ``count`` times; each call's seconds."""
    delay, clock = call_job.delay, time.perf_counter
    durations = []
    for _ in range(count):
        started = clock()
        value = delay(bench_job.COUNT).get(timeout=10)
        durations.append(clock() - started)
        if value != bench_job.RESULT:
            raise SystemExit(f"AsyncResult.get returned {value!r}")
    return durations
