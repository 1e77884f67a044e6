"""SAQ: ``saq --workers N`` (forked processes, each an event loop running up to 10 jobs)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, Callable, Optional

import bench_job
from saq import Queue

# SAQ imports typing_extensions without declaring it as a dependency.
PACKAGES = ["saq[hiredis]", "typing_extensions"]
VERSIONS = ["saq", "redis", "hiredis"]
HAS_BULK = True
WORKER_CONFIG = "saq --workers N, concurrency 10 (default)"
SINGLE_API = "await Queue.enqueue"
BULK_API = "asyncio.gather of Queue.enqueue, 100 at a time"
CALL_API = "`await Queue.apply(..., timeout=10, poll_interval=0.01)`: polls (default 0.5 s)"
BROKER_ENV = "QW_BENCH_BROKER"  # the broker URL, set by the driver for itself and the workers
CONCURRENT = 100
RESULT_POLL = 0.01  # how often apply() looks at the job (its default: 0.5 s)


async def noop(ctx: dict[str, Any], *, mode: int) -> None:
    """The job: report that it ran."""
    bench_job.ran(mode)


async def call_job(ctx: dict[str, Any], *, mode: int) -> str:
    """The call workload's job: report that it ran, return a small result."""
    bench_job.ran(mode)
    return bench_job.RESULT


# What ``saq peer_saq.settings`` runs; the queue connects lazily, in each process.
settings = {
    "queue": Queue.from_url(os.environ[BROKER_ENV], name="bench"),
    "functions": [noop, call_job],
    "concurrency": 10,
}


def setup(host: str, port: int, variant: str) -> None:
    """Nothing to do: each call below connects inside its own event loop."""


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """One ``saq`` command forking ``processes`` workers."""
    exe = os.path.join(os.path.dirname(sys.executable), "saq")
    return [[exe, "peer_saq.settings", "--workers", str(processes)]]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one awaited call at a time."""

    async def run() -> None:
        queue = Queue.from_url(os.environ[BROKER_ENV], name="bench")
        await queue.connect()
        for _ in range(count):
            if before_each:
                before_each()
            await queue.enqueue("noop", mode=mode)
        await queue.disconnect()

    asyncio.run(run())


_loop: Optional[asyncio.AbstractEventLoop] = None
_queue: Any = None


def queue_delayed(delay: float, mode: int) -> float:
    """``Queue.enqueue(..., scheduled=<epoch seconds>)`` on a queue kept connected; the due time."""
    global _loop, _queue
    if _loop is None:
        _loop = asyncio.new_event_loop()
        _queue = Queue.from_url(os.environ[BROKER_ENV], name="bench")
        _loop.run_until_complete(_queue.connect())
    due = time.time() + delay
    _loop.run_until_complete(_queue.enqueue("noop", mode=mode, scheduled=due))
    return due


def queue_bulk(count: int) -> None:
    """Queue ``count`` jobs with concurrent enqueues."""

    async def run() -> None:
        queue = Queue.from_url(os.environ[BROKER_ENV], name="bench")
        await queue.connect()
        for start in range(0, count, CONCURRENT):
            batch = min(CONCURRENT, count - start)
            await asyncio.gather(*(queue.enqueue("noop", mode=bench_job.COUNT) for _ in range(batch)))
        await queue.disconnect()

    asyncio.run(run())


def call_single(count: int) -> list[float]:
    """Enqueue a job and wait for its result with ``apply``, ``count`` times; each call's seconds."""

    async def run() -> list[float]:
        queue = Queue.from_url(os.environ[BROKER_ENV], name="bench")
        await queue.connect()
        clock, durations = time.perf_counter, []
        for _ in range(count):
            started = clock()
            value = await queue.apply("call_job", timeout=10, poll_interval=RESULT_POLL, mode=bench_job.COUNT)
            durations.append(clock() - started)
            if value != bench_job.RESULT:
                raise SystemExit(f"Queue.apply returned {value!r}")
        await queue.disconnect()
        return durations

    return asyncio.run(run())
