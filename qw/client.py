"""Queue jobs and look at managers, workers and queues.

:class:`Client` *has* a redis-py client (``client.redis``) rather than being
one: qw's API stays small and typed, and the raw client is there for anything
else. Names and ids come back as ``str``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

import redis

from . import job as jobcodec
from . import stats
from .claim import Claimer
from .connection import RedisConfig, translated
from .exceptions import ConfigError, UnknownWorker
from .keys import Keys, manager_of_worker, validate_manager_name
from .scripts import DirectCaller, Scripts

DEFAULT_BATCH = 1000
# How long the stats hashes a producer creates are kept; each manager's own
# history setting takes over as soon as it writes to them.
STATS_TTLS = (int(stats.DEFAULT_HISTORY[0] * 3600), stats.DEFAULT_HISTORY[1] * 86400)


@dataclass(frozen=True)
class FailedJob:
    """An entry of the failed list: the id, why it failed (each attempt), and its data."""

    id: str
    error: str
    traceback: str
    failed_at: Optional[float]
    worker: str
    data: dict[str, Any]
    attempts: int = 0
    errors: tuple[dict[str, Any], ...] = ()
    origin: str = ""  # the key of the queue it was taken from, if known


class Client:
    """Talks to the Redis that managers and workers share.

    ``host``, ``port`` and ``db`` are the original positional options; the
    rest are keyword-only: ``url`` (``redis://``, ``rediss://``, ``unix://``;
    default ``$QW_REDIS_URL``), ``namespace`` (a prefix for every key, such as
    ``{app}:``) and ``embedded`` (a directory holding an embedded server).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        *,
        url: Optional[str] = None,
        namespace: str = "",
        embedded: Optional[str] = None,
    ) -> None:
        self.config = RedisConfig(host=host, port=int(port), db=int(db), url=url, embedded=embedded)
        self.keys = Keys(namespace)
        self.redis = self.config.connect()
        self.scripts = Scripts(self.redis)
        self._local = threading.local()

    # A Client crosses into worker processes by its address, not its sockets.
    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "namespace": self.keys.namespace}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self.keys = Keys(state["namespace"])
        self.redis = self.config.connect()
        self.scripts = Scripts(self.redis)
        self._local = threading.local()

    def __repr__(self) -> str:
        ns = f", namespace={self.keys.namespace!r}" if self.keys.namespace else ""
        return f"<qw.Client {self.config.address()}{ns}>"

    def ping(self) -> bool:
        """True when Redis answers; raises :class:`ConnectionFailed` otherwise."""
        with translated(self.config):
            return bool(self.redis.ping())

    # -- registration (what managers and workers do for themselves) --------

    def register_manager(self, name: str) -> None:
        """Add ``name`` to ``all:managers``."""
        with translated(self.config):
            self.redis.sadd(self.keys.all_managers, validate_manager_name(name))

    def deregister_manager(self, name: str) -> None:
        """Remove ``name`` from ``all:managers``."""
        with translated(self.config):
            self.redis.srem(self.keys.all_managers, name)

    def register_worker(self, manager: str, worker: str) -> None:
        """Add ``worker`` to ``<manager>:workers``."""
        with translated(self.config):
            self.redis.sadd(self.keys.manager_workers(manager), worker)

    def deregister_worker(self, manager: str, worker: str) -> None:
        """Remove ``worker`` from ``<manager>:workers``."""
        with translated(self.config):
            self.redis.srem(self.keys.manager_workers(manager), worker)

    # -- queuing -----------------------------------------------------------

    def queue_job(
        self,
        job_data: Mapping[str, Any],
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        *,
        job_id: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> str:
        """Queue one job in one atomic step and return its id.

        With ``manager`` only that manager's workers may take it; with
        ``worker`` (a registered worker name) it lands in that worker's list.
        A ``job_id`` that already exists is not queued again, so a caller
        can safely repeat a queue call whose reply it did not get.
        ``max_attempts`` and ``timeout`` (seconds) override the manager's
        defaults for this job.
        """
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
                self._raise_unknown_worker(exc)
                raise
            if isinstance(reply, list):
                wake, name, client_id = (_text(x) for x in reply)
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
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        *,
        batch_size: int = DEFAULT_BATCH,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> list[str]:
        """Queue many jobs, one round trip per batch; return their ids in order.

        Every job is checked before the first is sent, so bad data queues
        nothing. Each job is queued atomically; a batch cut short by a lost
        connection leaves the jobs before the cut queued.
        """
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
                    self._raise_unknown_worker(exc)
                    raise
        return [job_id for job_id, _fields in encoded]

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

    @staticmethod
    def _raise_unknown_worker(exc: Exception) -> None:
        text = str(exc)
        if "QW_UNKNOWN_WORKER" in text:
            name = text.split("QW_UNKNOWN_WORKER", 1)[1].strip()
            raise UnknownWorker(f"worker {name!r} is not registered") from None

    # -- taking jobs (the seed API; Worker uses Claimer directly) ----------

    def fetch_next_job(
        self, manager: str, worker: str, timeout: float = 10
    ) -> Optional[tuple[str, dict[str, Any]]]:
        """Claim the next job for ``worker`` of ``manager``: ``(job_id, job_data)``.

        Waits up to ``timeout`` seconds; None when nothing came. The id stays
        in ``<worker>:jobs`` until :meth:`finish_job`.
        """
        claimer = Claimer(self.redis, self.scripts, self.keys, manager, worker)
        deadline = time.monotonic() + timeout
        moved = ""
        with translated(self.config):
            while True:
                job = claimer.claim(moved=moved)
                if job is not None:
                    return job.id, job.data
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                # Short slices, so a job queued to this manager meanwhile is seen.
                moved = claimer.wait(min(left, 0.05))

    def finish_job(self, job_id: str, worker_name: str) -> bool:
        """Acknowledge a job: delete its hash and its id from the worker's list, atomically.

        False when the id was not in that worker's list (nothing changed).
        """
        claimer = Claimer(self.redis, self.scripts, self.keys, "", worker_name)
        with translated(self.config):
            return claimer.ack_id(job_id)

    # -- inspection ----------------------------------------------------------

    def get_all_managers(self) -> list[str]:
        """Names of registered managers, sorted."""
        return sorted(self._members(self.keys.all_managers))

    def get_manager_holder(self, manager: str) -> Optional[str]:
        """Who holds ``manager``'s lease ("pid N on HOST (...)"), or None if it lapsed."""
        with translated(self.config):
            holder = self.redis.get(self.keys.manager_heartbeat(manager))
        return _text(holder) if holder is not None else None

    def get_manager_workers(self, manager: str) -> list[str]:
        """Worker names of ``manager``, sorted."""
        return sorted(self._members(self.keys.manager_workers(manager)), key=_natural)

    def get_worker_pending_jobs(self, worker: str) -> list[str]:
        """Ids in ``worker``'s in-progress list, the one it runs (or runs next) first."""
        return self._queue(self.keys.worker_jobs(worker))

    def get_manager_queued_jobs(self, manager: str) -> list[str]:
        """Ids waiting in ``<manager>:jobs``, next to run first."""
        return self._queue(self.keys.manager_jobs(manager))

    def get_all_queued_jobs(self) -> list[str]:
        """Ids waiting in ``all:jobs``, next to run first."""
        return self._queue(self.keys.all_jobs)

    def get_all_pending_jobs(self) -> dict[str, list[str]]:
        """In-progress ids of every registered worker, by worker name."""
        pending = {}
        for manager in self.get_all_managers():
            for worker in self.get_manager_workers(manager):
                pending[worker] = self.get_worker_pending_jobs(worker)
        return pending

    def get_failed_jobs(self) -> list[FailedJob]:
        """The failed list, most recent first, with each job's reason and data."""
        ids = [_text(i) for i in self._lrange(self.keys.all_failed)]
        with translated(self.config):
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            hashes = pipe.execute() if ids else []
        failed = []
        for job_id, raw in zip(ids, hashes):
            try:
                data, meta = jobcodec.decode(raw)
            except Exception:  # the reason it failed may be that it is undecodable
                data, meta = {}, {_text(k): _text(v) for k, v in raw.items()}
            failed_at = meta.get("qw:failed_at")
            try:
                errors = tuple(json.loads(meta.get("qw:errors", "[]")))
            except ValueError:
                errors = ()
            failed.append(
                FailedJob(
                    id=job_id,
                    error=meta.get("qw:error", ""),
                    traceback=meta.get("qw:traceback", ""),
                    failed_at=float(failed_at) if failed_at else None,
                    worker=meta.get("qw:worker", ""),
                    data=data,
                    attempts=int(meta.get("qw:attempts") or 0),
                    errors=errors,
                    origin=meta.get("qw:origin", ""),
                )
            )
        return failed

    def retry_failed(self, job_ids: Iterable[str]) -> dict[str, str]:
        """Queue failed jobs again with their attempts reset; say what became of each id.

        Each id maps to ``"queued"``, ``"not failed"`` (not in the failed
        list) or ``"no data"`` (a dangling id: nothing to run).
        """
        outcome = {1: "queued", 0: "not failed", -1: "no data"}
        result = {}
        with translated(self.config):
            for job_id in job_ids:
                done = self.scripts.retry_failed(
                    keys=[self.keys.all_failed, self.keys.job(job_id), self.keys.all_jobs],
                    args=[job_id, self.keys.namespace],
                )
                result[job_id] = outcome[int(done)]
        return result

    def retry_all_failed(self) -> dict[str, str]:
        """:meth:`retry_failed` on every id in the failed list."""
        return self.retry_failed(job.id for job in self.get_failed_jobs())

    def purge_failed(self) -> int:
        """Delete every failed job (its id and its hash); return how many."""
        count = 0
        with translated(self.config):
            while True:
                # Take a slice off the list and delete its hashes in one transaction.
                ids = self.redis.lrange(self.keys.all_failed, -500, -1)
                if not ids:
                    return count
                pipe = self.redis.pipeline(transaction=True)
                pipe.ltrim(self.keys.all_failed, 0, -len(ids) - 1)
                pipe.delete(*(self.keys.job(_text(i)) for i in ids))
                pipe.execute()
                count += len(ids)

    def get_scheduled_jobs(self) -> list[tuple[str, float]]:
        """Jobs waiting for a retry, as ``(job_id, due_at)`` (unix seconds), soonest first."""
        with translated(self.config):
            entries = self.redis.zrange(self.keys.all_scheduled, 0, -1, withscores=True)
        return [(_text(job_id), float(due)) for job_id, due in entries]

    def get_stats(self, manager: Optional[str] = None) -> dict[str, Any]:
        """Throughput, failures, wait and run time percentiles: of ``manager``, or of all.

        Windows of the last 1, 5, 15 and 60 minutes and of the whole history
        by minute, then one entry per day, newest first. The history is the
        one the manager (or, for all, the first live manager) keeps.
        """
        info = self.get_manager_info(manager) if manager else next(
            (i for i in map(self.get_manager_info, self.get_all_managers()) if i), {})
        history = (float(info.get("history_hours", stats.DEFAULT_HISTORY[0])),
                   int(info.get("history_days", stats.DEFAULT_HISTORY[1])))
        with translated(self.config):
            return stats.report(self.redis, self.keys, manager, history)

    def get_manager_info(self, manager: str) -> dict[str, Any]:
        """What a live manager publishes about itself each tick (``<manager>:info``); {} if none."""
        with translated(self.config):
            raw = self.redis.hgetall(self.keys.manager_info(manager))
        info: dict[str, Any] = {}
        for field, value in raw.items():
            text = _text(value)
            try:
                info[_text(field)] = json.loads(text)
            except ValueError:
                info[_text(field)] = text
        return info

    def control(self, manager: str, command: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """Send ``command`` to ``manager`` and wait for its answer: ``scale`` (``n=``),
        ``expand``, ``contract``, ``reload``, ``pause``, ``resume`` or ``stop``.

        Returns the answer (``ok``, ``message``, details); raises
        :class:`~qw.control.ControlError` when it is not running or does not
        answer within ``timeout`` seconds.
        """
        from .control import send  # the control module imports this one

        with translated(self.config):
            return send(self, validate_manager_name(manager), command, args, timeout)

    def get_orphaned_managers(self) -> list[str]:
        """Departed managers whose own queue still holds jobs, sorted."""
        return sorted(self._members(self.keys.all_orphaned))

    def get_manager_health(self, manager: str) -> dict[str, dict[str, Any]]:
        """What ``manager`` last published about each worker: pid, busy_for, since_last_claim, at."""
        with translated(self.config):
            raw = self.redis.hgetall(self.keys.manager_health(manager))
        return {_text(k): json.loads(v) for k, v in raw.items()}

    def get_job(self, job_id: str) -> Optional[dict[str, Any]]:
        """The data of a job still stored (queued, in progress or failed), else None."""
        with translated(self.config):
            raw = self.redis.hgetall(self.keys.job(job_id))
        return jobcodec.decode(raw)[0] if raw else None

    def _members(self, key: str) -> list[str]:
        with translated(self.config):
            return [_text(m) for m in self.redis.smembers(key)]

    def _lrange(self, key: str) -> list[bytes]:
        with translated(self.config):
            return self.redis.lrange(key, 0, -1)

    def _queue(self, key: str) -> list[str]:
        # Workers take from the right end: reverse, so the next to run is first.
        return [_text(i) for i in reversed(self._lrange(key))]

    def close(self) -> None:
        """Close the connections of this client (those of this thread, and the pool's)."""
        caller = getattr(self._local, "caller", None)
        if caller is not None:
            caller.close()
        self.redis.close()


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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _natural(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition(":")
    return (head, int(tail)) if tail.isdigit() else (name, -1)


