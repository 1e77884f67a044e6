"""Queuing jobs: the producer's hot path behind ``Client.queue_job`` and ``queue_jobs``.

:class:`Producer` sends one job with ``enqueue-6.lua`` on a per-thread
connection of its own (:class:`~qw.scripts.DirectCaller`) and remembers, per
thread and target queue, the idle worker it woke last (the wake hint); a
batch goes as ``enqueue_many-5.lua`` calls, one round trip per batch.
:mod:`qw.task_queuing` queues task calls through the same parts
(:meth:`Producer.target`, :meth:`~Producer.enqueue_args`,
:meth:`~Producer.send`, :meth:`~Producer.send_batch`).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Optional

import redis

from . import durable, stats
from . import job as jobcodec
from .connection import RedisConfig, error_text, is_redirect, translated, unblock
from .exceptions import ConfigError, ReplicationShortfall, UnknownWorker
from .keeping import check_priority
from .keys import SHARED_QUEUE, manager_of_worker, validate_manager_name
from .scripts import NOT_WAITED, DirectCaller, evalsha_each
from .store import Store, text

DEFAULT_BATCH = 1000
REDIRECT_WAIT = 30.0  # how long a producer waits for a cluster's slot to settle on its node
# How long the stats hashes a producer creates are kept; each manager's own
# history setting takes over as soon as it writes to them.
STATS_TTLS = (int(stats.DEFAULT_HISTORY[0] * 3600), stats.DEFAULT_HISTORY[1] * 86400)

#: Where a job goes, as the enqueue scripts take it: (the list it is pushed
#: on, the workers set to check, the idle hash to wake from, the wake mode
#: "worker" / "manager" / "", the worker that must be registered or "", its
#: priority in that queue: "" for none, else an integer as text).
#: A plain tuple: it is made once per queued job, and compared to group a batch.
Target = tuple[str, str, str, str, str, str]
#: One job of a batch: its id and its hash fields.
Encoded = tuple[str, dict[str, str]]


class Producer:
    """Queues jobs through one :class:`Store`; one per Client, shared by its threads."""

    def __init__(self, store: Store) -> None:
        # The parts are kept as attributes of their own: the hot path reads
        # them once per call, as it did when they were the Client's.
        self.config = store.config
        self.keys = store.keys
        self.redis = store.redis
        self.scripts = store.scripts
        self.durability = store.durability
        self._local = threading.local()

    def queue_job(
        self,
        job_data: Mapping[str, Any],
        manager: Optional[str],
        worker: Optional[str],
        job_id: Optional[str],
        max_attempts: Optional[int],
        timeout: Optional[float],
        queue: Optional[str] = None,
        record: Optional[dict[str, str]] = None,
        priority: Optional[int] = None,
    ) -> str:
        """Queue one job in one atomic step and return its id (see ``Client.queue_job``).

        ``record``: the fields that ask for a record (``qw.keeping.record_fields``), if any.
        """
        options = job_options(max_attempts, timeout)
        fields = jobcodec.encode(job_data)
        job_id = job_id or new_id()
        target = self.target(manager, worker, queue, priority)
        keys, args = self.enqueue_args(job_id, fields, options, target, record)
        self.send(keys, args)
        return job_id

    def queue_jobs(
        self,
        jobs: Iterable[Mapping[str, Any]],
        manager: Optional[str],
        worker: Optional[str],
        batch_size: int,
        max_attempts: Optional[int],
        timeout: Optional[float],
        queue: Optional[str] = None,
        record: Optional[dict[str, str]] = None,
        priority: Optional[int] = None,
        new_job_id: Optional[Callable[[], str]] = None,
    ) -> list[str]:
        """Queue many jobs, one round trip per batch; their ids in order (see ``Client.queue_jobs``).

        ``new_job_id`` makes each id (default :func:`new_id`; partitions make ids that name theirs).
        """
        make_id = new_job_id or new_id
        check_batch_size(batch_size)
        options = job_options(max_attempts, timeout)
        target = self.target(manager, worker, queue, priority)
        origin = target[0]
        queued_at = repr(time.time())
        # Encode everything first: bad data must queue nothing.
        encoded = []
        for data in jobs:
            fields = jobcodec.encode(data)
            if record:  # its fields first, where the script looks for them
                fields = {**record, **fields}
            fields["qw:queued_at"] = queued_at
            fields["qw:origin"] = origin
            fields.update(options)
            encoded.append((make_id(), fields))
        for start in range(0, len(encoded), batch_size):
            self.send_batch([(target, encoded[start : start + batch_size])])
        return [job_id for job_id, _fields in encoded]

    def close(self) -> None:
        """Close this thread's own connection, if it has one."""
        caller = getattr(self._local, "caller", None)
        if caller is not None:
            caller.close()

    def target(self, manager: Optional[str], worker: Optional[str], queue: Optional[str] = None,
               priority: Optional[int] = None) -> Target:
        """Where a job for ``worker``, else ``manager``, else ``queue`` (None: ``all:jobs``) goes.

        A queue given with a manager or a worker is a :class:`ConfigError`,
        and so is a priority for a job queued to one worker (its own list
        keeps arrival order).
        """
        rank = "" if not priority else str(check_priority(priority))
        if queue is not None:
            if manager or worker:
                raise ConfigError("a job goes to a queue or to a manager/worker, not both")
            if queue != SHARED_QUEUE:
                # A named queue's waiters are listed in its idle hash: wake
                # one as for a manager's queue. No worker is checked, so the
                # list itself stands in for the workers set, as for all:jobs.
                key = self.keys.named_queue(queue)
                return key, key, self.keys.named_queue_idle(queue), "manager", "", rank
        if worker:
            if rank:
                raise ConfigError("a job queued to one worker runs in arrival order: it takes no priority")
            manager = manager or manager_of_worker(worker)
            return (self.keys.worker_jobs(worker), self.keys.manager_workers(manager),
                    self.keys.manager_idle(manager), "worker", worker, "")
        if manager:
            validate_manager_name(manager)
            return (self.keys.manager_jobs(manager), self.keys.manager_workers(manager),
                    self.keys.manager_idle(manager), "manager", "", rank)
        # Waiters block on all:jobs itself: the LPUSH wakes them.
        all_jobs = self.keys.all_jobs
        return all_jobs, all_jobs, all_jobs, "", "", rank

    def enqueue_args(
        self, job_id: str, fields: dict[str, str], options: dict[str, str], target: Target,
        record: Optional[dict[str, str]] = None,
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of ``enqueue-6.lua`` for one job; adds qw's fields to ``fields``.

        The ``record`` fields go first, where the script looks for them.
        """
        queue, workers, idle, wake, check, rank = target
        fields["qw:queued_at"] = repr(time.time())
        fields["qw:origin"] = queue
        fields.update(options)
        minute, day = self._stats_keys()
        args = [job_id, check, wake, *STATS_TTLS, "", "", rank]
        if record:
            for name, value in record.items():
                args += [name, value]
        for name, value in fields.items():
            args += [name, value]
        return [self.keys.job(job_id), queue, workers, idle, minute, day], args

    def send(self, keys: list[str], args: list[str], wait: Optional[tuple[str, float]] = None) -> Any:
        """Run ``enqueue-6.lua`` on this thread's connection and wake the worker it names.

        With ``wait`` (``all:settled:<id>`` and seconds), a BLPOP on that key
        follows the script in the same write, for a caller that waits for
        the job it queues (``Task.call``): its reply (None when the block
        ran out) is returned, or :data:`~qw.scripts.NOT_WAITED`.
        """
        # A job for a manager, a worker or a named queue must wake an idle
        # worker. The one woken last time is likely idle again: it is
        # unblocked right behind the queuing call, in the same round trip,
        # and the script takes it off the idle list if the guess is right.
        hints = self._hints()
        guess = hints.get(keys[1], ("", "")) if args[2] else ("", "")
        args[5:7] = guess
        popped: Any = NOT_WAITED
        if self.durability:
            wait = None  # the job is confirmed (WAIT) on this connection before anyone waits for it
        with translated(self.config):
            try:
                caller = self._direct()
                reloaded = False
                guessed = ("CLIENT", "UNBLOCK", guess[1]) if guess[1] else None
                if wait is not None:
                    blpop = ("BLPOP", wait[0], max(0.001, round(wait[1], 3)))
                    reply, popped = caller.call_then_block(self.scripts.enqueue, keys, args, guessed, blpop,
                                                           go_on=lambda r: isinstance(r, list))
                    reloaded = popped is NOT_WAITED  # perhaps: then an extra unblock is harmless
                elif guessed:
                    reply, reloaded = caller.call_then(self.scripts.enqueue, keys, args, guessed)
                else:
                    reply = caller(self.scripts.enqueue, keys, args)
            except Exception as exc:
                _raise_unknown_worker(exc)
                raise_refused(exc, self.config)
                if not is_redirect(exc):
                    raise
                # A cluster's slot moving: wait until its node takes the job (nothing was written).
                args[5:7] = ("", "")  # no unblock rides behind this time
                reply, reloaded = waited_out(lambda: caller(self.scripts.enqueue, keys, args)), False
            if isinstance(reply, list):
                wake, name, client_id = (text(x) for x in reply)
                if name:
                    hints[keys[1]] = (name, client_id)
                    if reloaded:  # the guessed unblock ran before the job was there
                        wake = client_id
                if wake:
                    # Guessed wrong (or no guess): a second round trip, on
                    # the same raw connection unless it waits in a BLPOP. An
                    # ACL user without CLIENT gets an error: the worker polls anyway.
                    if wait is not None:
                        unblock(self.redis, [int(wake)], self.keys.all_jobs)
                    else:
                        with contextlib.suppress(redis.ResponseError):
                            caller.command("CLIENT", "UNBLOCK", int(wake))
            if self.durability:
                durable.confirm(caller, self.durability, f"job {args[0]}")
        return popped

    def send_batch(self, segments: list[tuple[Target, list[Encoded]]]) -> None:
        """Queue one batch in one round trip: each segment's jobs go to its target, in order.

        One ``enqueue_many-5.lua`` call per run of jobs with the same target
        and number of fields (a batch of one shape is one call), pipelined.
        """
        minute, day = self._stats_keys()
        prefix = self.keys.job_prefix
        calls = []
        for (queue, workers, idle, wake, check, rank), jobs in segments:
            keys = (queue, workers, idle, minute, day)
            for width, jobs_args in _runs(jobs):
                calls.append((keys, (prefix, check, wake, width, *STATS_TTLS, rank, *jobs_args)))
        with translated(self.config):
            try:
                self._pipelined(calls)
            except Exception as exc:
                _raise_unknown_worker(exc)
                raise_refused(exc, self.config)
                raise

    def _pipelined(self, calls: list[tuple[tuple[str, ...], tuple[Any, ...]]]) -> None:
        script = self.scripts.enqueue_many
        pending, errors, wake = calls, [], []
        confirmed: Optional[int] = None  # durable mode: the fewest replicas that confirmed a round
        for attempt in (1, 2):
            # Every reply is read, errors included, so that the jobs of the
            # other calls still wake their workers before an error is raised.
            retry = []
            if self.durability:
                replies, got = durable.run_confirmed(self.redis, self._direct(), script, pending,
                                                     self.durability)
                confirmed = got if confirmed is None else min(confirmed, got)
            else:
                replies = evalsha_each(self.redis, script, pending)
            for call, reply in zip(pending, replies):
                if isinstance(reply, redis.exceptions.NoScriptError) and attempt == 1:
                    retry.append(call)
                elif isinstance(reply, Exception):
                    errors.append(reply)
                else:
                    wake.extend(reply)
            if not retry:
                break
            # Redis lost its script cache: load it and send those calls again
            # (any of their jobs already queued are skipped).
            self.redis.script_load(script.script)
            pending = retry
        self._wake(wake)
        if errors:
            raise errors[0]
        if self.durability and confirmed is not None and confirmed < self.durability.replicas:
            raise durable.shortfall(self.durability, confirmed, "a batch of jobs")

    def _direct(self) -> DirectCaller:
        # One connection per thread (and per process: a forked child must not
        # share its parent's socket) for single-job calls, the hot path of a
        # producer; see DirectCaller.
        caller = getattr(self._local, "caller", None)
        if caller is None or self._local.pid != os.getpid():
            caller = self._local.caller = DirectCaller(self.redis, self.keys.all_jobs)
            self._local.pid = os.getpid()
        return caller

    def _hints(self) -> dict[str, tuple[str, str]]:
        """Per thread: target queue -> (name, client id) of the idle worker woken last for it."""
        hints = getattr(self._local, "hints", None)
        if hints is None:
            hints = self._local.hints = {}
        return hints

    def _wake(self, replies: list[Any]) -> None:
        # The enqueue script names idle workers whose own, manager's or named
        # queue just got a job: unblock their wait so they claim it now.
        ids = [int(r) for r in replies if isinstance(r, bytes) and r]
        # An ACL user without CLIENT UNBLOCK still gets its jobs run: the
        # worker's wait is short anyway.
        unblock(self.redis, ids, self.keys.all_jobs)

    def _stats_keys(self) -> tuple[str, str]:
        """This minute's and this day's ``all:stats`` hashes, where queuing counts ``queued``."""
        now = time.time()
        return (self.keys.all_stats(stats.MINUTE, int(now // 60)),
                self.keys.all_stats(stats.DAY, int(now // 86400)))


def _runs(jobs: list[Encoded]) -> list[tuple[int, list[str]]]:
    """The jobs as runs of the same number of fields, each flattened to id, field, value, ...

    ``enqueue_many-5.lua`` takes jobs of one width per call; runs keep the
    queue order.
    """
    runs: list[tuple[int, list[str]]] = []
    for job_id, fields in jobs:
        if not runs or runs[-1][0] != len(fields):
            runs.append((len(fields), []))
        args = runs[-1][1]
        args.append(job_id)
        for item in fields.items():
            args.extend(item)
    return runs


def waited_out(call: Callable[[], Any], seconds: float = REDIRECT_WAIT) -> Any:
    """``call()``, tried again with backoff while a cluster answers that the slot is moving."""
    deadline = time.monotonic() + seconds
    delay = 0.02
    while True:
        time.sleep(delay * random.uniform(0.5, 1.0))
        try:
            return call()
        except redis.ResponseError as exc:
            if not is_redirect(exc) or time.monotonic() > deadline:
                raise
        delay = min(delay * 2, 1.0)


def raise_refused(exc: Exception, config: RedisConfig) -> None:
    """A write refused for want of replicas (``min-replicas-to-write``) as :class:`ReplicationShortfall`:
    one line for the producer, who may queue again with the same id."""
    if isinstance(exc, redis.ResponseError) and error_text(exc).startswith("NOREPLICAS"):
        raise ReplicationShortfall(f"Redis at {config.address()} refused the write: fewer good replicas "
                                   "than its min-replicas-to-write (NOREPLICAS); queue again with the same "
                                   "id once they are back", written=False) from None


def _raise_unknown_worker(exc: Exception) -> None:
    message = str(exc)
    if "QW_UNKNOWN_WORKER" in message:
        name = message.split("QW_UNKNOWN_WORKER", 1)[1].strip()
        raise UnknownWorker(f"worker {name!r} is not registered") from None


def new_id() -> str:
    """A random job id: 32 hex digits, as uuid4().hex looks, at a third of its cost."""
    return os.urandom(16).hex()


def new_ids(n: int) -> list[str]:
    """``n`` ids as :func:`new_id` makes them, from one read of the random source (a third of the cost)."""
    digits = os.urandom(16 * n).hex()
    return [digits[i : i + 32] for i in range(0, 32 * n, 32)]


def job_options(max_attempts: Optional[int], timeout: Optional[float]) -> dict[str, str]:
    """The hash fields of a job's own limits (``qw:max_attempts``, ``qw:timeout``), if given."""
    options = {}
    if max_attempts is not None:
        if int(max_attempts) < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {max_attempts}")
        options["qw:max_attempts"] = str(int(max_attempts))
    if timeout is not None:
        if float(timeout) <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        options["qw:timeout"] = repr(float(timeout))
    return options


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` if it is a whole number of at least 1, else :class:`ConfigError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    return batch_size
