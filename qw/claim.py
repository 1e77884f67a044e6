"""The unit of work: how one worker claims, acknowledges and fails jobs.

The worker loop never spells a key; it asks a :class:`Claimer` for the next
job and tells it how the last one ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import redis

from . import job as jobcodec
from .exceptions import JobDataError
from .keys import Keys
from .scripts import Scripts


@dataclass
class Job:
    """A claimed job: its id, the user's data, qw's metadata, and which run this is."""

    id: str
    data: dict[str, Any]
    attempt: int
    meta: dict[str, str] = field(default_factory=dict)


class Claimer:
    """Claims and settles jobs for one worker.

    Claim order: the worker's own list (jobs queued to it, or left by a
    predecessor of the same name), then its manager's queue, then
    ``all:jobs``. The claimed id stays in the worker's list until it is
    acknowledged or failed, so a crash never loses it.
    """

    def __init__(
        self, client: redis.Redis, scripts: Scripts, keys: Keys, manager: str, worker: str
    ) -> None:
        self.redis = client
        self.scripts = scripts
        self.keys = keys
        self.worker = worker
        self.own = keys.worker_jobs(worker)
        self.manager_queue = keys.manager_jobs(manager)
        self._claim_keys = [self.own, self.manager_queue, keys.all_jobs, keys.all_failed]

    def claim(self, ack: Optional[str] = None, moved: str = "") -> Optional[Job]:
        """Acknowledge ``ack`` (if given) and claim the next job, in one round trip.

        ``moved`` is an id :meth:`wait` just moved from ``all:jobs``. Returns
        None when every queue is empty. Jobs whose data cannot be decoded go
        to the failed list here, with the reason, and the next one is tried.
        """
        while True:
            reply = self._call_claim(ack or "", "1", moved)
            ack, moved = None, ""
            if len(reply) < 3:
                return None
            job_id = _str(reply[1])
            raw = dict(zip(reply[3::2], reply[4::2]))
            try:
                data, meta = jobcodec.decode(raw)
            except JobDataError as exc:
                self.fail(job_id, f"undecodable job data: {exc}")
                continue
            return Job(id=job_id, data=data, attempt=int(reply[2]), meta=meta)

    def ack(self, job_id: str) -> bool:
        """Acknowledge a finished job; False if it had left this worker's list."""
        return self._call_claim(job_id, "0", "")[0] == 1

    def wait(self, seconds: float) -> str:
        """Block up to ``seconds`` for a job on ``all:jobs``; return its id or ""."""
        moved = self.redis.blmove(self.keys.all_jobs, self.own, seconds, "RIGHT", "RIGHT")
        return _str(moved) if moved is not None else ""

    def fail(self, job_id: str, error: str, traceback: str = "") -> bool:
        """Move a job to the failed list with ``error`` (one line) and its traceback."""
        fields = ["qw:error", error, "qw:failed_at", repr(time.time()), "qw:worker", self.worker]
        if traceback:
            fields += ["qw:traceback", traceback]
        done = self.scripts.fail(
            keys=[self.own, self.keys.all_failed, self.keys.job(job_id)], args=[job_id, *fields]
        )
        return done == 1

    def _call_claim(self, ack: str, claim: str, moved: str) -> list[Any]:
        return self.scripts.ack_and_claim(
            keys=self._claim_keys,
            args=[self.keys.job_prefix, ack, claim, repr(time.time()), moved],
        )


def requeue_worker(
    client: redis.Redis, scripts: Scripts, keys: Keys, manager: str, worker: str, keep_own: bool
) -> int:
    """Put a dead or departed worker's in-progress jobs back at the head of their queues.

    With ``keep_own``, jobs queued to that very worker stay in its list for a
    replacement of the same name; otherwise they go to its manager's queue.
    Returns how many ids moved.
    """
    return int(
        scripts.requeue(
            keys=[keys.worker_jobs(worker), keys.manager_jobs(manager), keys.all_jobs],
            args=[keys.job_prefix, "1" if keep_own else "0"],
            client=client,
        )
    )


def _str(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
