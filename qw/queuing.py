"""Queuing jobs: the producer's hot path behind ``Client.queue_job`` and ``queue_jobs``.

:class:`Producer` sends one job with ``enqueue-6.lua`` on a per-thread
connection of its own (:class:`~qw.scripts.DirectCaller`) and remembers, per
thread and target queue, the idle worker it woke last (the wake hint); a
batch goes as ``enqueue_many-5.lua`` calls, one round trip per batch.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Iterable, Mapping, Optional

import redis

from . import job as jobcodec
from . import stats
from .connection import translated
from .exceptions import ConfigError, UnknownWorker
from .keys import manager_of_worker, validate_manager_name
from .scripts import DirectCaller
from .store import Store, text

DEFAULT_BATCH = 1000
# How long the stats hashes a producer creates are kept; each manager's own
# history setting takes over as soon as it writes to them.
STATS_TTLS = (int(stats.DEFAULT_HISTORY[0] * 3600), stats.DEFAULT_HISTORY[1] * 86400)


class Producer:
    """Queues jobs through one :class:`Store`; one per Client, shared by its threads."""

    def __init__(self, store: Store) -> None:
        # The parts are kept as attributes of their own: the hot path reads
        # them once per call, as it did when they were the Client's.
        self.config = store.config
        self.keys = store.keys
        self.redis = store.redis
        self.scripts = store.scripts
        self._local = threading.local()

    def queue_job(
        self,
        job_data: Mapping[str, Any],
        manager: Optional[str],
        worker: Optional[str],
        job_id: Optional[str],
        max_attempts: Optional[int],
        timeout: Optional[float],
    ) -> str:
        """Queue one job in one atomic step and return its id (see ``Client.queue_job``)."""
        options = _job_options(max_attempts, timeout)
        job_id, keys, args = self._enqueue_call(job_data, manager, worker, job_id, options)
        # A job for a manager or a worker must wake an idle worker. The one
        # woken last time is likely idle again: it is unblocked right behind
        # the queuing call, in the same round trip, and the script takes it
        # off the idle list if the guess is right.
        hints = self._hints()
        guess = hints.get(keys[1], ("", "")) if args[2] else ("", "")
        args[5:7] = guess
        with translated(self.config):
            try:
                caller = self._direct()
                reloaded = False
                if guess[1]:
                    unblock = ("CLIENT", "UNBLOCK", guess[1])
                    reply, reloaded = caller.call_then(self.scripts.enqueue, keys, args, unblock)
                else:
                    reply = caller(self.scripts.enqueue, keys, args)
            except Exception as exc:
                _raise_unknown_worker(exc)
                raise
            if isinstance(reply, list):
                wake, name, client_id = (text(x) for x in reply)
                if name:
                    hints[keys[1]] = (name, client_id)
                    if reloaded:  # the guessed unblock ran before the job was there
                        wake = client_id
                if wake:
                    # Guessed wrong (or no guess): a second round trip on the
                    # same raw connection. An ACL user without CLIENT gets an
                    # error: the worker polls anyway.
                    with contextlib.suppress(redis.ResponseError):
                        caller.command("CLIENT", "UNBLOCK", int(wake))
        return job_id

    def queue_jobs(
        self,
        jobs: Iterable[Mapping[str, Any]],
        manager: Optional[str],
        worker: Optional[str],
        batch_size: int,
        max_attempts: Optional[int],
        timeout: Optional[float],
    ) -> list[str]:
        """Queue many jobs, one round trip per batch; their ids in order (see ``Client.queue_jobs``)."""
        options = _job_options(max_attempts, timeout)
        queue, workers, idle, wake = self._target(manager, worker)
        queued_at = repr(time.time())
        # Encode everything first: bad data must queue nothing.
        encoded = []
        for data in jobs:
            fields = jobcodec.encode(data)
            fields["qw:queued_at"] = queued_at
            fields["qw:origin"] = queue
            fields.update(options)
            encoded.append((_new_id(), fields))
        with translated(self.config):
            for start in range(0, len(encoded), batch_size):
                try:
                    batch = encoded[start : start + batch_size]
                    self._send_batch(batch, [queue, workers, idle, *self._stats_keys()], worker, wake)
                except Exception as exc:
                    _raise_unknown_worker(exc)
                    raise
        return [job_id for job_id, _fields in encoded]

    def close(self) -> None:
        """Close this thread's own connection, if it has one."""
        caller = getattr(self._local, "caller", None)
        if caller is not None:
            caller.close()

    def _send_batch(
        self, batch: list[tuple[str, dict[str, str]]], keys: list[str], worker: Optional[str], wake: str
    ) -> None:
        # One script call per run of jobs with the same number of fields (a
        # batch of one shape is one call); runs keep the queue order.
        runs: list[tuple[int, list[str]]] = []
        for job_id, fields in batch:
            if not runs or runs[-1][0] != len(fields):
                runs.append((len(fields), []))
            args = runs[-1][1]
            args.append(job_id)
            for item in fields.items():
                args.extend(item)
        script = self.scripts.enqueue_many
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            for width, jobs_args in runs:
                pipe.evalsha(script.sha, len(keys), *keys, self.keys.job_prefix, worker or "", wake, width,
                             *STATS_TTLS, *jobs_args)
            try:
                replies = pipe.execute()
                break
            except redis.exceptions.NoScriptError:
                # Redis lost its script cache: load it and send the batch
                # again (jobs already queued are skipped).
                if attempt == 2:
                    raise
                self.redis.script_load(script.script)
        self._wake([i for reply in replies for i in reply])

    def _direct(self) -> DirectCaller:
        # One connection per thread (and per process: a forked child must not
        # share its parent's socket) for single-job calls, the hot path of a
        # producer; see DirectCaller.
        caller = getattr(self._local, "caller", None)
        if caller is None or self._local.pid != os.getpid():
            caller = self._local.caller = DirectCaller(self.redis)
            self._local.pid = os.getpid()
        return caller

    def _hints(self) -> dict[str, tuple[str, str]]:
        """Per thread: target queue -> (name, client id) of the idle worker woken last for it."""
        hints = getattr(self._local, "hints", None)
        if hints is None:
            hints = self._local.hints = {}
        return hints

    def _wake(self, replies: list[Any]) -> None:
        # The enqueue script names idle workers whose own or manager's queue
        # just got a job: unblock their wait on all:jobs so they claim it now.
        ids = [int(r) for r in replies if isinstance(r, bytes) and r]
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for client_id in ids:
            pipe.client_unblock(client_id)
        # An ACL user without CLIENT UNBLOCK still gets its jobs run: the
        # worker's wait on all:jobs is short anyway.
        pipe.execute(raise_on_error=False)

    def _enqueue_call(
        self,
        data: Mapping[str, Any],
        manager: Optional[str],
        worker: Optional[str],
        job_id: Optional[str],
        options: dict[str, str],
    ) -> tuple[str, list[str], list[str]]:
        fields = jobcodec.encode(data)
        queue, workers, idle, wake = self._target(manager, worker)
        fields["qw:queued_at"] = repr(time.time())
        fields["qw:origin"] = queue
        fields.update(options)
        job_id = job_id or _new_id()
        minute, day = self._stats_keys()
        args = [job_id, worker or "", wake, *STATS_TTLS, "", ""]
        for name, value in fields.items():
            args += [name, value]
        return job_id, [self.keys.job(job_id), queue, workers, idle, minute, day], args

    def _stats_keys(self) -> tuple[str, str]:
        """This minute's and this day's ``all:stats`` hashes, where queuing counts ``queued``."""
        now = time.time()
        return (self.keys.all_stats(stats.MINUTE, int(now // 60)),
                self.keys.all_stats(stats.DAY, int(now // 86400)))

    def _target(self, manager: Optional[str], worker: Optional[str]) -> tuple[str, str, str, str]:
        """The list a job goes on, the workers set and idle hash to check, whom to wake."""
        if worker:
            manager = manager or manager_of_worker(worker)
            queue, wake = self.keys.worker_jobs(worker), "worker"
        elif manager:
            queue, wake = self.keys.manager_jobs(validate_manager_name(manager)), "manager"
        else:
            return self.keys.all_jobs, self.keys.all_jobs, self.keys.all_jobs, ""
        return queue, self.keys.manager_workers(manager), self.keys.manager_idle(manager), wake


def _raise_unknown_worker(exc: Exception) -> None:
    message = str(exc)
    if "QW_UNKNOWN_WORKER" in message:
        name = message.split("QW_UNKNOWN_WORKER", 1)[1].strip()
        raise UnknownWorker(f"worker {name!r} is not registered") from None


def _new_id() -> str:
    """A random job id: 32 hex digits, as uuid4().hex looks, at a third of its cost."""
    return os.urandom(16).hex()


def _job_options(max_attempts: Optional[int], timeout: Optional[float]) -> dict[str, str]:
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
