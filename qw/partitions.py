"""One queue over K hash tags, so that one deployment spreads over a cluster's primaries (a first slice).

Partition ``p`` of the namespace ``{app}:`` is the namespace ``{app:p}:``:
a whole qw namespace of its own (its queues, job hashes, in-progress lists,
scheduled and failed jobs), in its own slot, so each of qw's scripts still
runs on one primary. K is stored once in the base namespace
(``{app}:all:partitions``, set by the first client or manager, never
expiring: one short string per deployment) and checked by every
:class:`PartitionedClient`, so a producer and a manager that disagree on K
are refused rather than lose jobs in a partition nobody serves.

A job id carries its partition (``"<p>.<32 hex digits>"``), so looking a
job up, cancelling or waiting for it is one hop. Producers spread jobs
round-robin, or by a ``partition_key`` (jobs with the same key go to one
partition, in order). The readers (queued and failed jobs) fan out.

Built so far: the layout and its check, the producer side, the lookups
and the fan-out above. Workers serve one partition each, through a
manager run on that partition's namespace (``--namespace='{app:0}:'``);
a worker that takes from its home partition first and from the others
without blocking is not built yet.
"""

from __future__ import annotations

import itertools
import threading
import zlib
from typing import Any, Iterable, Mapping, Optional

from .client import Client
from .connection import has_hash_tag
from .exceptions import ConfigError, JobNotFound
from .failed import FailedJob
from .handle import JobHandle
from .keys import Keys
from .queuing import DEFAULT_BATCH, check_batch_size, new_id
from .scripts import Scripts
from .store import Store

MAX_PARTITIONS = 1024


def partition_namespaces(namespace: str, partitions: int) -> list[str]:
    """The namespace of each partition: ``{app}:`` -> ``{app:0}:``, ``{app:1}:``, ..."""
    if not has_hash_tag(namespace):
        raise ConfigError("partitions need a namespace with a hash tag, such as '{app}:'; "
                          f"got {namespace!r}")
    start = namespace.find("{")
    end = namespace.find("}", start + 1)
    return [f"{namespace[:start]}{{{namespace[start + 1:end]}:{p}}}{namespace[end + 1:]}"
            for p in range(partitions)]


def partitioned_id(partition: int) -> str:
    """A new job id that names its partition."""
    return f"{partition}.{new_id()}"


def partition_of(job_id: str, partitions: int) -> int:
    """The partition a job id names; :class:`JobNotFound` for an id that names none of them."""
    head, dot, _rest = job_id.partition(".")
    if dot and head.isdigit() and int(head) < partitions:
        return int(head)
    raise JobNotFound(f"job {job_id!r} names no partition of {partitions} (ids look like '0.<hex>')")


def check_partitions(partitions: Any) -> int:
    whole = isinstance(partitions, int) and not isinstance(partitions, bool)
    if not whole or not 1 <= partitions <= MAX_PARTITIONS:
        raise ConfigError(f"partitions must be a whole number from 1 to {MAX_PARTITIONS}, got {partitions!r}")
    return partitions


class PartitionedClient:
    """A producer's and reader's view of one queue spread over ``partitions`` partitions.

    ``url`` and ``namespace`` as for :class:`~qw.Client` (the namespace
    must hold a hash tag). One redis-py client is shared by the partitions.
    """

    def __init__(self, *, url: Optional[str] = None, namespace: str = "{qw}:", partitions: int,
                 **connection: Any) -> None:
        self.partitions = check_partitions(partitions)
        namespaces = partition_namespaces(namespace, self.partitions)
        self.base = Client(url=url, namespace=namespace, **connection)
        shared = self.base.redis
        self.parts = [_client_on(Store(self.base.config, Keys(ns), shared, Scripts(shared)))
                      for ns in namespaces]
        self._check_stored()
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def _check_stored(self) -> None:
        key = self.base.keys.all_partitions
        stored = self.base.redis.set(key, self.partitions, nx=True) or self.base.redis.get(key)
        if stored is not True and int(stored) != self.partitions:
            raise ConfigError(f"this deployment has {int(stored)} partitions ({key}), not {self.partitions}: "
                              "every producer and manager must use the same number")

    def partition_for(self, partition_key: Optional[str] = None) -> int:
        """The partition of ``partition_key`` (always the same one), or the next in turn."""
        if partition_key is not None:
            return zlib.crc32(str(partition_key).encode()) % self.partitions
        with self._lock:
            return next(self._turn) % self.partitions

    def queue_job(self, job_data: Mapping[str, Any], *, partition_key: Optional[str] = None,
                  **options: Any) -> str:
        """Queue one job (options as for ``Client.queue_job``) on a partition; its id names it."""
        if "job_id" in options:
            raise ConfigError("a partitioned job's id is made by qw, to carry its partition")
        p = self.partition_for(partition_key)
        return self.parts[p].queue_job(job_data, job_id=partitioned_id(p), **options)

    def queue_jobs(self, jobs: Iterable[Mapping[str, Any]], *, partition_key: Optional[str] = None,
                   batch_size: int = DEFAULT_BATCH, **options: Any) -> list[str]:
        """Queue many jobs, dealt over the partitions in turn (or all to ``partition_key``'s), one
        round trip per partition and batch; their ids in order. ``options``: ``max_attempts`` and
        ``timeout``."""
        check_batch_size(batch_size)
        unknown = set(options) - {"max_attempts", "timeout"}
        if unknown:
            raise ConfigError(f"partitioned queue_jobs takes max_attempts and timeout, not {sorted(unknown)}")
        jobs = list(jobs)
        places = [self.partition_for(partition_key) for _ in jobs]
        ids: list[str] = [""] * len(jobs)
        for p in sorted(set(places)):
            mine = [i for i, place in enumerate(places) if place == p]
            queued = self.parts[p]._producer.queue_jobs(
                [jobs[i] for i in mine], None, None, batch_size, options.get("max_attempts"),
                options.get("timeout"), new_job_id=lambda p=p: partitioned_id(p))
            for i, job_id in zip(mine, queued):
                ids[i] = job_id
        return ids

    def job(self, job_id: str) -> JobHandle:
        """The handle of a job, found on its own partition."""
        return self.part_of(job_id).job(job_id)

    def cancel(self, job_id: str) -> bool:
        return self.part_of(job_id).cancel(job_id)

    def get_job(self, job_id: str) -> Optional[dict[str, Any]]:
        return self.part_of(job_id).get_job(job_id)

    def part_of(self, job_id: str) -> Client:
        """The client of the partition ``job_id`` names."""
        return self.parts[partition_of(job_id, self.partitions)]

    def get_all_queued_jobs(self) -> list[str]:
        """The ids waiting in every partition's shared queue, partition by partition."""
        return [job_id for part in self.parts for job_id in part.get_all_queued_jobs()]

    def get_failed_jobs(self) -> list[FailedJob]:
        """The failed jobs of every partition, newest first."""
        failed = [job for part in self.parts for job in part.get_failed_jobs()]
        return sorted(failed, key=lambda job: job.failed_at or 0, reverse=True)

    def close(self) -> None:
        for part in self.parts:
            part._producer.close()
        self.base.close()


def _client_on(store: Store) -> Client:
    """A :class:`~qw.Client` on an existing store (sharing its redis-py client)."""
    client = Client.__new__(Client)
    client._open(store)
    return client
