"""The unit of work: how one worker claims, acknowledges and fails jobs.

The worker loop never spells a key; it asks a :class:`Claimer` for the next
job and tells it how the last one ended. Every claim carries a fencing
token: settling a run with a stale token, after the run was taken back
(requeued, perhaps claimed again), is refused by the scripts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import redis

from . import job as jobcodec
from . import promotion
from .durable import Durability, DurableCaller
from .exceptions import JobDataError, QwError
from .keys import SHARED_QUEUE, Keys
from .queues import QueueOrder, QueueSpec
from .scripts import DirectCaller, Scripts

# What settle_failure-4.lua answers.
RETRYING, FAILED, REFUSED = 1, 0, -1
UNDECODABLE = object()  # a claimed job whose data could not be decoded (it is failed at once)


@dataclass
class Job:
    """A claimed job: its id, the user's data, which attempt this is, qw's metadata."""

    id: str
    data: dict[str, Any]
    attempt: int
    meta: dict[str, str] = field(default_factory=dict)
    token: int = 0  # this claim's fencing token: settling with an old one is refused
    keep: int = 0  # once done: seconds its record stays (0: its hash is deleted)
    result: str = ""  # once done: its result as JSON, kept with the record
    moved: bool = False  # its run queued it on its next queue (complete): nothing to acknowledge
    claimer: Optional[Claimer] = field(default=None, repr=False, compare=False)  # set while it runs

    def complete(self, next: str, data: Optional[dict[str, Any]] = None) -> None:
        """Finish this step and queue this same job on queue ``next`` (a queue name), in one atomic step.

        ``data`` (a JSON object) replaces its data; None keeps it. Its
        attempts start afresh. Call it from the running job, once; the
        worker then does not acknowledge it.
        """
        if self.claimer is None:
            raise RuntimeError("complete() is for the job a worker is running now")
        if self.moved:
            raise RuntimeError(f"job {self.id} was completed into its next queue already")
        self.claimer.complete(self, next, data)
        self.moved = True

    @property
    def max_attempts(self) -> Optional[int]:
        """Attempts allowed by the job itself (``max_attempts`` at queue time), if any."""
        value = self.meta.get("qw:max_attempts")
        return int(value) if value else None

    @property
    def schedule(self) -> Optional[str]:
        """The recurring schedule this job is a run of, if any (see ``Client.recur``)."""
        return self.meta.get("qw:recur")

    @property
    def due(self) -> Optional[float]:
        """When this run of a recurring schedule was due (unix seconds); with :attr:`schedule`,
        an idempotency key."""
        value = self.meta.get("qw:recur_due")
        return float(value) if value else None

    @property
    def timeout(self) -> Optional[float]:
        """The job's own time limit in seconds (``timeout`` at queue time), if any."""
        value = self.meta.get("qw:timeout")
        return float(value) if value else None

    @property
    def depends_on(self) -> list[str]:
        """The ids of the jobs this one waited for (``depends_on`` at queue time)."""
        return json.loads(self.meta.get("qw:depends_on") or "[]")

    @property
    def failed_dependencies(self) -> list[str]:
        """Those of them that failed or were cancelled (it runs anyway: ``on_dependency_failure="run"``)."""
        return json.loads(self.meta.get("qw:failed_deps") or "[]")


class Claimer:
    """Claims and settles jobs for one worker.

    Claim order: the worker's own list (jobs queued to it, or left by a
    predecessor of the same name), then its manager's queue, then
    ``all:jobs``; or, with ``queues`` (``qw.queues.parse_queues``' result),
    those named queues in their order (``all`` among them is ``all:jobs``),
    strict or shuffled by weight on each claim. The claimed id stays in the
    worker's list until it is acknowledged or failed, so a crash never loses it.
    """

    def __init__(
        self,
        client: redis.Redis,
        scripts: Scripts,
        keys: Keys,
        manager: str,
        worker: str,
        blocking: Optional[redis.Redis] = None,
        direct: bool = False,
        queues: Optional[list[QueueSpec]] = None,
        durability: Optional[Durability] = None,
    ) -> None:
        self.redis = client
        self.scripts = scripts
        self.keys = keys
        self.worker = worker
        self.own = keys.worker_jobs(worker)
        self.manager_queue = keys.manager_jobs(manager)
        # What an idle worker blocks on (BLMOVE): all:jobs, or with named
        # queues that do not include it, the first of them.
        self.block_key = keys.all_jobs
        self._claim_keys = [self.own, self.manager_queue, keys.all_jobs, keys.all_failed,
                            keys.manager_idle(manager)]
        self._order: Optional[QueueOrder] = None
        self._idle_keys: list[str] = []
        self._sources = 0  # queues after the manager's in the claim keys; 0: the default order
        if queues:
            self._serve(queues)
        # With a connection of its own for blocking waits, the worker lists
        # itself as idle under that connection's client id, so that a producer
        # queuing to its manager or to it can wake it (CLIENT UNBLOCK).
        self._waiter = self._caller(blocking, durability) if blocking is not None else None
        self._client_id: Optional[str] = None
        self._idle = False  # the last claim found nothing: we may be listed as idle
        self.refused = 0  # settlements refused as stale, for logs and tests
        # A worker claims on a connection of its own (see DirectCaller); the
        # seed API's fetch_next_job shares the client's pool.
        self._direct = self._caller(client, durability) if direct else None
        self._durable = durability is not None

    def _caller(self, client: redis.Redis, durability: Optional[Durability]) -> DirectCaller:
        if durability:  # durable mode: each claim and acknowledgement waits for the replicas
            return DurableCaller(client, self.keys.all_jobs, durability, self.worker)
        return DirectCaller(client, self.keys.all_jobs)

    def _serve(self, queues: list[QueueSpec]) -> None:
        names = [name for name, _weight in queues]
        if SHARED_QUEUE not in names:
            self.block_key = self.keys.named_queue(names[0])
        self._claim_keys[2] = self.block_key
        self._sources = len(names)
        self._order = QueueOrder(queues, key=self.keys.named_queue)
        # Listed as idle in the named queues it does not block on, so that a
        # producer queuing there can wake it (as for <manager>:jobs).
        self._idle_keys = [self.keys.named_queue_idle(name) for name in names
                           if name != SHARED_QUEUE and self.keys.named_queue(name) != self.block_key]
        if not self._order.weighted:
            self._claim_keys = self._keys_for(self._order.items)
            self._order = None  # the same keys every claim

    def _keys_for(self, order: tuple[str, ...]) -> list[Any]:
        return [*self._claim_keys[:5], *order, *self._idle_keys]

    def _keys(self) -> list[Any]:
        """The claim script's keys for this claim (a weighted order is drawn per claim)."""
        if self._order is None:
            return self._claim_keys
        return self._keys_for(self._order.pick())

    def claim(self, ack: Optional[Job] = None, moved: str = "") -> Optional[Job]:
        """Acknowledge ``ack`` (if given) and claim the next job, in one round trip.

        ``moved`` is an id :meth:`wait` just moved from ``all:jobs``. Returns
        None when every queue is empty. Jobs whose data cannot be decoded go
        to the failed list here, with the reason, and the next one is tried.
        """
        ack_id, token = (ack.id, str(ack.token)) if ack else ("", "")
        while True:
            reply = self._call_claim(ack_id, token, "1", moved, ack)
            if ack_id and reply[0] != 1:
                self.refused += 1
            ack_id, token, moved, ack = "", "", "", None
            job = self._job_from(reply)
            if job is not UNDECODABLE:
                return job

    def wait_and_claim(self, seconds: float) -> Optional[Job]:
        """Block up to ``seconds`` for a job on ``all:jobs``, then claim, in one round trip.

        The claim runs right after the wait ends: a job moved from
        ``all:jobs``, one queued to the manager or to this worker (which wakes
        it), or None when the wait ran out on empty queues.
        """
        if self._waiter is None:
            return self.claim(moved=self.wait(seconds))
        blmove = ("BLMOVE", self.block_key, self.own, "RIGHT", "RIGHT", seconds)
        try:
            _moved, reply = self._waiter.block_then_call(
                blmove, self.scripts.ack_and_claim, self._keys(), self._claim_args("", "1", "*", ""))
        except redis.RedisError:
            self._client_id = None  # a new connection has a new id
            raise
        self._idle = len(reply) < 4 and self._client_id is not None
        job = self._job_from(reply)
        return self.claim() if job is UNDECODABLE else job

    def _job_from(self, reply: list[Any]) -> Any:
        """The Job a claim returned, None, or UNDECODABLE (then failed here)."""
        if len(reply) < 4:
            return None
        job_id, attempt, token = _str(reply[1]), int(reply[2]), int(reply[3])
        try:
            data, meta = jobcodec.decode_pairs(reply[4])
        except JobDataError as exc:
            # Retrying cannot make bad data good: fail it now.
            self.fail(Job(job_id, {}, attempt, token=token), f"undecodable job data: {exc}", retry_at=None)
            return UNDECODABLE
        return Job(id=job_id, data=data, attempt=attempt, meta=meta, token=token)

    def claim_many(self, acks: list[Job], want: int, moved: str = "") -> list[Job]:
        """Acknowledge ``acks`` and claim up to ``want`` jobs, in one round trip (a prefetch).

        Call it only while holding no claimed job other than those in
        ``acks``. ``want`` 0 only acknowledges. Jobs whose data cannot be
        decoded are failed here and left out.
        """
        reply = self._call_many(acks, want, moved)
        return self._jobs_from_many(reply, len(acks))

    def wait_and_claim_many(self, seconds: float, want: int) -> list[Job]:
        """:meth:`wait_and_claim` for up to ``want`` jobs."""
        if self._waiter is None:
            return self.claim_many([], want, self.wait(seconds))
        blmove = ("BLMOVE", self.block_key, self.own, "RIGHT", "RIGHT", seconds)
        try:
            _moved, reply = self._waiter.block_then_call(
                blmove, self.scripts.ack_and_claim_many, self._keys(), self._many_args([], want, "*"))
        except redis.RedisError:
            self._client_id = None
            raise
        self._idle = len(reply) < 2 and self._client_id is not None
        return self._jobs_from_many(reply, 0)

    def _many_args(self, acks: list[Job], want: int, moved: str) -> list[Any]:
        wake_id = self._wake_id() if want > 0 else ""
        args: list[Any] = [self.keys.job_prefix, repr(time.time()), moved, self.worker, wake_id,
                           "1" if self._idle else "0", want, len(acks)]
        kept: list[Any] = []
        for i, job in enumerate(acks, 1):
            args += (job.id, job.token)
            if job.keep:
                kept += (i, job.keep, job.result)
        args.append(len(kept) // 3)
        args += kept
        if self._sources:
            args.append(self._sources)
        return args

    def _call_many(self, acks: list[Job], want: int, moved: str) -> list[Any]:
        args = self._many_args(acks, want, moved)
        if self._direct is not None:
            reply = self._direct(self.scripts.ack_and_claim_many, self._keys(), args)
        else:
            reply = self.scripts.ack_and_claim_many(keys=self._keys(), args=args)
        if want > 0:
            self._idle = len(reply) < 2 and args[4] != ""
        return reply

    def _jobs_from_many(self, reply: list[Any], acks: int) -> list[Job]:
        self.refused += acks - int(reply[0])
        jobs, i = [], 1
        while i < len(reply):
            job = self._job_from([None, *reply[i : i + 4]])
            if job is not UNDECODABLE:
                jobs.append(job)
            i += 4
        return jobs

    def ack(self, job: Job) -> bool:
        """Acknowledge a finished job; False if refused (it left this worker's list, or is stale)."""
        done = self._call_claim(job.id, str(job.token), "0", "", job)[0] == 1
        self.refused += not done
        return done

    def ack_id(self, job_id: str) -> bool:
        """Acknowledge by id alone, without the attempt check (the seed API's finish_job)."""
        return self._call_claim(job_id, "", "0", "")[0] == 1

    def wait(self, seconds: float) -> str:
        """Block up to ``seconds`` for a job on ``all:jobs``; return its id or "".

        Returns early, with "", when a producer wakes this worker for a job
        queued to it or to its manager.
        """
        try:
            if self._waiter is not None:
                moved = self._waiter.command("BLMOVE", self.block_key, self.own, "RIGHT", "RIGHT", seconds)
            else:
                moved = self.redis.blmove(self.block_key, self.own, seconds, "RIGHT", "RIGHT")
        except redis.RedisError:
            self._client_id = None  # a new connection has a new id
            raise
        return _str(moved) if moved is not None else ""

    def _wake_id(self) -> str:
        if self._waiter is None:
            return ""
        if self._client_id is None:
            try:
                self._client_id = str(self._waiter.command("CLIENT", "ID"))
            except redis.ResponseError:  # CLIENT not allowed to this ACL user: poll only
                self._waiter = None
                return ""
        return self._client_id

    def fail(
        self,
        job: Job,
        error: str,
        traceback: str = "",
        retry_at: Optional[float] = None,
        max_attempts: int = 1,
        retry_in: Optional[float] = None,
    ) -> int:
        """Settle a failed run: retry in ``retry_in`` seconds (or at ``retry_at``, this
        host's clock) while attempts remain, else fail (both None).

        ``retry_in`` counts from Redis's clock, as the scheduler does.
        ``max_attempts`` applies when the job did not set its own. Returns
        RETRYING, FAILED or REFUSED (a stale attempt: nothing changed).
        """
        now = time.time()
        if retry_in is None and retry_at is not None:
            retry_in = retry_at - now
        record = {"attempt": job.attempt, "error": error, "at": now, "worker": self.worker}
        if traceback:
            record["traceback"] = traceback
        keys = [self.own, self.keys.all_scheduled, self.keys.all_failed, self.keys.job(job.id)]
        args = [job.id, str(job.token), max_attempts, "" if retry_in is None else repr(float(retry_in)),
                json.dumps(record, ensure_ascii=False), error, traceback, repr(now), self.worker]
        if self._durable and self._direct is not None:  # confirmed by the replicas, as an ack is
            result = int(self._direct(self.scripts.settle_failure, keys, args))
        else:
            result = int(self.scripts.settle_failure(keys=keys, args=args))
        self.refused += result == REFUSED
        return result

    def complete(self, job: Job, next_queue: str, data: Optional[dict[str, Any]]) -> None:
        """See :meth:`Job.complete`; :class:`~qw.exceptions.QwError` if the run was taken back."""
        fields = jobcodec.encode(data) if data is not None else {}
        args: list[Any] = [job.id, str(job.token), "1" if data is not None else "0"]
        for item in fields.items():
            args.extend(item)
        keys = [self.own, self.keys.job(job.id), self.keys.named_queue(next_queue)]
        done = int(self.scripts.complete(keys=keys, args=args))
        if done != 1:
            raise QwError(f"job {job.id} could not move on to {next_queue!r}: its run was taken back")

    def cancelled(self, job: Job, default_ttl: int) -> bool:
        """Settle a run stopped by a cancel: kept as "cancelled", never retried; False if stale."""
        done = int(self.scripts.settle_cancel(
            keys=[self.own, self.keys.job(job.id)],
            args=[job.id, str(job.token), self.keys.namespace, default_ttl])) == 1
        self.refused += not done
        return done

    def _claim_args(self, ack: str, claim: str, moved: str, token: str) -> list[Any]:
        wake_id = self._wake_id() if claim == "1" else ""
        args = [self.keys.job_prefix, ack, claim, repr(time.time()), moved, token, self.worker,
                wake_id, "1" if self._idle else "0", self._sources or ""]
        return args

    def _call_claim(self, ack: str, token: str, claim: str, moved: str,
                    done: Optional[Job] = None) -> list[Any]:
        args = self._claim_args(ack, claim, moved, token)
        if done is not None and done.keep:
            args += (done.keep, done.result)
        wake_id = args[7]
        if self._direct is not None:
            reply = self._direct(self.scripts.ack_and_claim, self._keys(), args)
        else:
            reply = self.scripts.ack_and_claim(keys=self._keys(), args=args)
        if claim == "1":
            self._idle = len(reply) < 4 and wake_id != ""
        return reply


def requeue_worker(
    client: redis.Redis,
    scripts: Scripts,
    keys: Keys,
    manager: str,
    worker: str,
    *,
    keep_own: bool,
    cause: str = "",
    max_attempts: int = 1,
    only_if_lease_gone: bool = False,
    started: Optional[Sequence[str]] = None,
) -> int:
    """Put a dead or departed worker's jobs back at the head of their queues.

    With ``keep_own``, jobs queued to that very worker stay in its list for a
    replacement of the same name; otherwise they go to its manager's queue.
    ``cause`` says why the running job was interrupted: it then used an
    attempt (failed past ``max_attempts``); without it the attempt is given
    back. ``started``, when known (the worker's manager read it from shared
    memory), names the jobs the worker had started: only those use an
    attempt; the others it held get theirs back. Returns how many ids moved,
    or -1 when ``only_if_lease_gone`` found the manager alive.
    """
    return int(
        scripts.requeue(
            keys=[keys.worker_jobs(worker), keys.manager_jobs(manager), keys.all_jobs, keys.all_failed,
                  keys.manager_heartbeat(manager)],
            args=[keys.job_prefix, "1" if keep_own else "0", cause, max_attempts, repr(time.time()),
                  "1" if only_if_lease_gone else "0", worker,
                  *(() if started is None else ("1", *started))],
            client=client,
        )
    )


def promote_due(client: redis.Redis, scripts: Scripts, keys: Keys, limit: int = 1000) -> int:
    """Move jobs that are due (delayed jobs, retries) from ``all:scheduled`` to their queue, waking
    idle workers that can take them; how many moved (at most ``limit``)."""
    done = promotion.promote(promotion.on(client), scripts, keys, limit)
    promotion.wake(client, done.wake, keys.all_jobs)
    return done.moved


def _str(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
