"""The physical reference: what one job costs Redis and redis-py + hiredis, with no queue library.

A job is ``MULTI; HSET job:<id> a 1; LPUSH all:jobs <id>; EXEC``, the plain
producer of qw's protocol: one round trip per job when sent one at a time,
1000 jobs per round trip in bulk. It has no workers.
"""

from __future__ import annotations

import uuid
from typing import Callable, Optional

import redis

PACKAGES: list[str] = []  # runs next to qw, with its redis-py and hiredis
VERSIONS = ["redis", "hiredis"]
HAS_BULK = True
WORKER_CONFIG = "n/a (no workers)"
SINGLE_API = "MULTI; HSET; LPUSH; EXEC (redis-py pipeline, transaction)"
BULK_API = "the same, 1000 transactions per pipeline"
BATCH = 1000

_redis: Optional[redis.Redis] = None


def setup(host: str, port: int, variant: str) -> None:
    """Connect."""
    global _redis
    _redis = redis.Redis(host, port)
    _redis.ping()


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """The reference has no workers."""
    raise NotImplementedError("the reference only queues")


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """One transaction, so one round trip, per job."""
    assert _redis is not None
    for _ in range(count):
        job_id = uuid.uuid4().hex
        pipe = _redis.pipeline(transaction=True)
        pipe.hset(f"job:{job_id}", "a", "1")
        pipe.lpush("all:jobs", job_id)
        pipe.execute()


def queue_bulk(count: int) -> None:
    """The same transactions, BATCH of them per round trip."""
    assert _redis is not None
    for start in range(0, count, BATCH):
        pipe = _redis.pipeline(transaction=False)
        for _ in range(min(BATCH, count - start)):
            job_id = uuid.uuid4().hex
            pipe.execute_command("MULTI")
            pipe.hset(f"job:{job_id}", "a", "1")
            pipe.lpush("all:jobs", job_id)
            pipe.execute_command("EXEC")
        pipe.execute()
