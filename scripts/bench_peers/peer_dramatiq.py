"""Dramatiq with the Redis broker: one ``dramatiq`` command, N processes of 8 threads.

The call workload (variant ``call``) adds the Results middleware with its
Redis backend, on the same Redis, in the producer and the workers alike.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

import bench_job
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

PACKAGES = ["dramatiq[redis]", "hiredis"]
VERSIONS = ["dramatiq", "redis", "hiredis"]
HAS_BULK = False  # group(...).run() sends the messages one by one: no bulk path
WORKER_CONFIG = "dramatiq --processes N --threads 8"
SINGLE_API = "actor.send"
BULK_API = "n/a (group.run enqueues one message at a time)"
CALL_API = "`actor.send(...).get_result(block=True, timeout=10000)`: the Results middleware, BRPOPLPUSH"
BROKER_ENV = "QW_BENCH_BROKER"  # the broker URL, set by the driver for itself and the workers
CALLS = os.environ.get(bench_job.VARIANT_ENV) == "call"

broker = RedisBroker(url=os.environ[BROKER_ENV])
if CALLS:
    broker.add_middleware(Results(backend=RedisBackend(url=os.environ[BROKER_ENV])))
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def noop(mode: int) -> None:
    """The job: report that it ran."""
    bench_job.ran(mode)


def setup(host: str, port: int, variant: str) -> None:
    """Check the broker (its URL came from the environment, set by the driver)."""
    broker.client.ping()


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """One dramatiq command running ``processes`` worker processes."""
    exe = os.path.join(os.path.dirname(sys.executable), "dramatiq")
    return [[exe, "peer_dramatiq", "--processes", str(processes), "--threads", "8"]]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one call at a time."""
    send = noop.send
    for _ in range(count):
        if before_each:
            before_each()
        send(mode)


def queue_delayed(delay: float, mode: int) -> float:
    """``send_with_options(delay=<ms>)``; the due time."""
    due = time.time() + delay
    noop.send_with_options(args=(mode,), delay=int(delay * 1000))
    return due


def queue_bulk(count: int) -> None:
    """No bulk API: the drain pre-queues with the single call."""
    queue_single(count, bench_job.COUNT)


if CALLS:  # store_results is an option only the Results middleware knows

    @dramatiq.actor(max_retries=0, store_results=True)
    def call_job(mode: int) -> str:
        """The call workload's job: report that it ran, return a small result."""
        bench_job.ran(mode)
        return bench_job.RESULT


def call_single(count: int) -> list[float]:
    """Send a message and block on its result, ``count`` times; each call's seconds."""
    send, clock = call_job.send, time.perf_counter
    durations = []
    for _ in range(count):
        started = clock()
        value = send(bench_job.COUNT).get_result(block=True, timeout=10_000)
        durations.append(clock() - started)
        if value != bench_job.RESULT:
            raise SystemExit(f"get_result returned {value!r}")
    return durations
