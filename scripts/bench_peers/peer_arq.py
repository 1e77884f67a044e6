"""arq: N ``arq`` worker processes (one event loop each, up to 10 jobs at once)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, Callable, Optional

import bench_job
from arq import create_pool
from arq.connections import RedisSettings

PACKAGES = ["arq", "hiredis"]
VERSIONS = ["arq", "redis", "hiredis"]
HAS_BULK = True
WORKER_CONFIG = "N x arq worker, max_jobs 10 (default), poll_delay 0.05 s (default 0.5 s)"
SINGLE_API = "await ArqRedis.enqueue_job"
BULK_API = "asyncio.gather of enqueue_job, 100 at a time"
CALL_API = "`await (await enqueue_job(...)).result(timeout=10, poll_delay=0.01)`: polls (default 0.5 s)"
BROKER_ENV = "QW_BENCH_BROKER"  # the broker URL, set by the driver for itself and the workers
RESULT_POLL = 0.01  # how often job.result() looks for the result (its default: 0.5 s)
CONCURRENT = 100  # enqueues in flight at once: each holds a connection for its transaction
# arq logs every job at INFO; the other systems run at WARNING too.
LOG_CONFIG = {"version": 1, "disable_existing_loggers": False, "loggers": {"arq": {"level": "WARNING"}}}

async def noop(ctx: dict[str, Any], mode: int) -> None:
    """The job: report that it ran."""
    bench_job.ran(mode)


async def call_job(ctx: dict[str, Any], mode: int) -> str:
    """The call workload's job: report that it ran, return a small result."""
    bench_job.ran(mode)
    return bench_job.RESULT


class WorkerSettings:
    """What ``arq peer_arq.WorkerSettings`` runs."""

    functions = [noop, call_job]
    redis_settings = RedisSettings.from_dsn(os.environ[BROKER_ENV])
    # The default 0.5 s poll would cap each process near 200 jobs/s; 50 ms is
    # qw's own poll slice.
    poll_delay = 0.05
    handle_signals = True


def setup(host: str, port: int, variant: str) -> None:
    """Nothing to do: each call below opens its pool inside its own event loop."""


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """``processes`` independent ``arq`` workers."""
    exe = os.path.join(os.path.dirname(sys.executable), "arq")
    return [[exe, "--custom-log-dict", "peer_arq.LOG_CONFIG", "peer_arq.WorkerSettings"]
            for _ in range(processes)]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one awaited call at a time."""

    async def run() -> None:
        pool = await create_pool(WorkerSettings.redis_settings)
        for _ in range(count):
            if before_each:
                before_each()
            await pool.enqueue_job("noop", mode)
        await pool.aclose()

    asyncio.run(run())


_loop: Optional[asyncio.AbstractEventLoop] = None
_pool: Any = None


def queue_delayed(delay: float, mode: int) -> float:
    """``enqueue_job(..., _defer_by=delay)`` on a pool kept open between calls; the due time."""
    global _loop, _pool
    if _loop is None:
        _loop = asyncio.new_event_loop()
        _pool = _loop.run_until_complete(create_pool(WorkerSettings.redis_settings))
    due = time.time() + delay
    _loop.run_until_complete(_pool.enqueue_job("noop", mode, _defer_by=delay))
    return due


def queue_bulk(count: int) -> None:
    """Queue ``count`` jobs with concurrent enqueues."""

    async def run() -> None:
        pool = await create_pool(WorkerSettings.redis_settings)
        for start in range(0, count, CONCURRENT):
            batch = min(CONCURRENT, count - start)
            await asyncio.gather(*(pool.enqueue_job("noop", bench_job.COUNT) for _ in range(batch)))
        await pool.aclose()

    asyncio.run(run())


def call_single(count: int) -> list[float]:
    """Enqueue a job and await its result, ``count`` times; each call's seconds."""

    async def run() -> list[float]:
        pool = await create_pool(WorkerSettings.redis_settings)
        clock, durations = time.perf_counter, []
        for _ in range(count):
            started = clock()
            job = await pool.enqueue_job("call_job", bench_job.COUNT)
            value = await job.result(timeout=10, poll_delay=RESULT_POLL)
            durations.append(clock() - started)
            if value != bench_job.RESULT:
                raise SystemExit(f"job.result returned {value!r}")
        await pool.aclose()
        return durations

    return asyncio.run(run())
