"""Queue jobs and look at managers, workers and queues: :class:`Client`, qw's producer API.

:class:`Client` *has* a redis-py client (``client.redis``) rather than being
one: qw's API stays small and typed, and the raw client is there for anything
else. Names and ids come back as ``str``.

The Client is a front: each method hands over to the module that does that
one job, through the client's :class:`~qw.store.Store`: :mod:`qw.queuing`
(queue one or many jobs), :mod:`qw.task_queuing` (queue task
calls), :mod:`qw.seed` (registration, ``fetch_next_job``,
``finish_job``), :mod:`qw.inspection` (the ``get_*`` readers),
:mod:`qw.census` (the table of tasks), :mod:`qw.failed` (the failed list) and
:mod:`qw.control` (commands to a manager). A new feature adds a module and a few delegates here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Optional, Sequence

import redis

from . import census, depending, failed, inspection, records, recurring, schedule, seed, task_queuing, when
from .call import Call
from .connection import RedisConfig, translated
from .control import send
from .durable import DEFAULT_WAIT_TIMEOUT_MS, Durability
from .exceptions import ConfigError
from .failed import FailedJob
from .handle import JobHandle
from .keeping import check_result_ttl, check_tags, record_fields
from .keys import Keys, validate_manager_name, validate_schedule_name
from .queuing import DEFAULT_BATCH, STATS_TTLS, Producer, job_options
from .records import JobInfo
from .recurrence import DEFAULT_MAX_CATCHUP, Recurrence
from .scripts import Scripts
from .store import Store
from .when import Delay

__all__ = ["Client", "FailedJob", "DEFAULT_BATCH", "STATS_TTLS"]


class Client:
    """Talks to the Redis that managers and workers share.

    ``host``, ``port`` and ``db`` are the original positional options; the
    rest are keyword-only: ``url`` (``redis://``, ``rediss://``, ``unix://``;
    default ``$QW_REDIS_URL``), ``namespace`` (a prefix for every key, such as
    ``{app}:``) and ``embedded`` (a directory holding an embedded server).
    ``wait_replicas`` (default 0: off) turns on durable mode: each queued
    job is confirmed by that many replicas (``WAIT``, up to
    ``wait_timeout_ms`` milliseconds), or the call raises
    :class:`~qw.exceptions.ReplicationShortfall` (see :mod:`qw.durable`).
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
        wait_replicas: int = 0,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
    ) -> None:
        config = RedisConfig(host=host, port=int(port), db=int(db), url=url, embedded=embedded)
        self._open(Store.open(config, namespace, Durability.of(wait_replicas, wait_timeout_ms)))

    def _open(self, store: Store) -> None:
        self._store = store
        self._producer = Producer(store)

    # A Client crosses into worker processes by its address, not its sockets.
    def __getstate__(self) -> dict[str, Any]:
        return {"config": self._store.config, "namespace": self._store.keys.namespace,
                "durability": self._store.durability}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._open(Store.open(state["config"], state["namespace"], state.get("durability")))

    @property
    def config(self) -> RedisConfig:
        """Where the Redis is (picklable; no sockets)."""
        return self._store.config

    @property
    def durability(self) -> Optional[Durability]:
        """Durable mode's setting (``wait_replicas``), or None when off."""
        return self._store.durability

    @property
    def keys(self) -> Keys:
        """The key names under this client's namespace."""
        return self._store.keys

    @property
    def redis(self) -> redis.Redis:
        """The redis-py client, for anything qw's API does not cover."""
        return self._store.redis

    @property
    def scripts(self) -> Scripts:
        """qw's Lua scripts, loaded on this client's connection."""
        return self._store.scripts

    def __repr__(self) -> str:
        ns = f", namespace={self.keys.namespace!r}" if self.keys.namespace else ""
        return f"<qw.Client {self.config.address()}{ns}>"

    def ping(self) -> bool:
        """True when Redis answers; raises :class:`ConnectionFailed` otherwise."""
        with translated(self._store.config):
            return bool(self._store.redis.ping())

    def close(self) -> None:
        """Close the connections of this client (those of this thread, and the pool's)."""
        self._producer.close()
        self._store.redis.close()

    # -- registration (what managers and workers do for themselves) --------

    def register_manager(self, name: str) -> None:
        """Add ``name`` to ``all:managers``."""
        seed.register_manager(self._store, name)

    def deregister_manager(self, name: str) -> None:
        """Remove ``name`` from ``all:managers``."""
        seed.deregister_manager(self._store, name)

    def register_worker(self, manager: str, worker: str) -> None:
        """Add ``worker`` to ``<manager>:workers``."""
        seed.register_worker(self._store, manager, worker)

    def deregister_worker(self, manager: str, worker: str) -> None:
        """Remove ``worker`` from ``<manager>:workers``."""
        seed.deregister_worker(self._store, manager, worker)

    # -- queuing -----------------------------------------------------------

    def queue_job(
        self,
        job_data: Mapping[str, Any],
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        *,
        queue: Optional[str] = None,
        job_id: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        result_ttl: Optional[int] = None,
        tags: Optional[Iterable[str]] = None,
        track: bool = False,
        priority: Optional[int] = None,
        depends_on: Optional[Iterable[Any]] = None,
        on_dependency_failure: str = "fail",
        delay: Optional[Delay] = None,
        at: Optional[datetime] = None,
    ) -> str:
        """Queue one job in one atomic step and return its id.

        With ``manager`` only that manager's workers may take it; with
        ``worker`` (a registered worker name) it lands in that worker's list;
        with ``queue`` it goes to that named queue (``all:queue:<name>``;
        ``"all"``: ``all:jobs``), not together with a manager or a worker.
        A ``job_id`` that already exists is not queued again, so a caller
        can safely repeat a queue call whose reply it did not get.
        ``max_attempts`` and ``timeout`` (seconds) override the manager's
        defaults for this job. A plain job keeps nothing once done, unless
        given ``result_ttl`` (seconds its record stays: state, the target's
        return value, history), ``tags`` or ``track`` (see :meth:`job`).
        ``priority`` orders it within its queue: lower runs sooner, 0 (the
        default) first in first out with the rest. ``depends_on`` (handles
        or ids) makes it wait until each of those jobs is done; one that
        fails for good or is cancelled fails it too
        (``on_dependency_failure="fail"``) or not (``"run"``). ``delay``
        (seconds or a timedelta) or ``at`` (a datetime with a time zone;
        past: now) queue it for later: its state is ``scheduled`` until a
        manager moves it to its queue, on time.
        """
        record = record_fields(check_result_ttl(result_ttl), check_tags(tags), track, task=False)
        waits_for = depending.dependency_ids(depends_on)
        due = when.due(delay, at)
        if waits_for and due is not None:
            raise ConfigError("a job waits for its dependencies or for a time, not both")
        if waits_for:
            options = job_options(max_attempts, timeout)
            return depending.queue_waiting_job(self._producer, job_data, manager, worker, queue, job_id,
                                               options, record, priority, waits_for, on_dependency_failure)
        if due is not None:
            return schedule.schedule_job(self._producer, job_data, due, manager, worker, job_id, max_attempts,
                                         timeout, queue, record, priority)
        return self._producer.queue_job(job_data, manager, worker, job_id, max_attempts, timeout, queue,
                                        record, priority)

    def queue_jobs(
        self,
        jobs: Iterable[Mapping[str, Any]],
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        *,
        queue: Optional[str] = None,
        batch_size: int = DEFAULT_BATCH,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        result_ttl: Optional[int] = None,
        tags: Optional[Iterable[str]] = None,
        track: bool = False,
        priority: Optional[int] = None,
        delay: Optional[Delay] = None,
        at: Optional[datetime] = None,
    ) -> list[str]:
        """Queue many jobs, one round trip per batch; return their ids in order.

        Every job is checked before the first is sent, so bad data queues
        nothing. Each job is queued atomically; a batch cut short by a lost
        connection leaves the jobs before the cut queued. ``queue``, the
        record options, ``priority``, ``delay``, ``at``: as for
        :meth:`queue_job` (all due at once).
        """
        record = record_fields(check_result_ttl(result_ttl), check_tags(tags), track, task=False)
        due = when.due(delay, at)
        if due is not None:
            return schedule.schedule_jobs(self._producer, jobs, due, manager, worker, batch_size,
                                          max_attempts, timeout, queue, record, priority)
        return self._producer.queue_jobs(jobs, manager, worker, batch_size, max_attempts, timeout, queue,
                                         record, priority)

    # -- queuing tasks -------------------------------------------------------

    def queue_call(self, call: Call) -> str:
        """Queue one task call (a :class:`~qw.call.Call`) as :meth:`queue_job` would; return its id.

        What ``Task.delay`` and ``send_with`` use. The call says where it
        goes (``worker``, else ``manager``, else ``queue``) and holds its own
        ``job_id``, ``max_attempts``, ``timeout`` and due time (``delay``, ``at``).
        """
        if getattr(call, "due", None) is not None:  # not a Call: task_queuing says so
            return schedule.schedule_call(self._producer, call)
        return task_queuing.queue_call(self._producer, call)

    def queue_call_and_wait(self, call: Call, block: float) -> tuple[str, Any]:
        """:meth:`queue_call` with the first ``block`` seconds of the wait for it in the same round
        trip (what ``Task.call`` uses): the id, and that wait's BLPOP reply
        (``qw.task_queuing.queue_and_wait``)."""
        if getattr(call, "due", None) is not None:
            return self.queue_call(call), task_queuing.NOT_WAITED
        return task_queuing.queue_and_wait(self._producer, call, block)

    def queue_calls(self, calls: Iterable[Call], batch_size: int = DEFAULT_BATCH) -> list[str]:
        """Queue many task calls, one round trip per batch, as :meth:`queue_jobs`; return the ids in order.

        What ``Task.map`` uses. Calls to different lists may be mixed; each
        keeps its place in its list's order.
        """
        if not isinstance(calls, task_queuing.CallBatch):
            calls = list(calls)
            if any(getattr(call, "due", None) is not None for call in calls):  # each checked when built
                return [self.queue_call(call) for call in calls]
        return task_queuing.queue_calls(self._producer, calls, batch_size)

    def enqueue(self, task: str, /, *args: Any, **kwargs: Any) -> JobHandle:
        """Queue ``task(*args, **kwargs)`` by import path (``"myapp.tasks:add"``) or task name.

        Every keyword argument is the task's own: the job goes to ``all:jobs``
        with the manager's limits. For a queue, a manager, a worker, an id or
        limits, use :meth:`submit`. The task need not be importable here.
        """
        return JobHandle(self.queue_call(Call(task, args, kwargs)), self)

    def submit(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        *,
        queue: Optional[str] = None,
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        job_id: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        result_ttl: Optional[int] = None,
        tags: Optional[Iterable[str]] = None,
        track: bool = False,
        priority: Optional[int] = None,
        depends_on: Optional[Iterable[Any]] = None,
        on_dependency_failure: str = "fail",
        delay: Optional[Delay] = None,
        at: Optional[datetime] = None,
    ) -> JobHandle:
        """Queue a call of ``task`` (a task name or an import path) with every option.

        ``args`` and ``kwargs`` are the task's arguments (JSON); the options
        are those of :meth:`queue_job`. Only what is given here counts: a
        task declared in this process does not lend its own queue or limits
        (``task.send_with`` does).
        """
        call = Call(task, args, kwargs or {}, queue=queue, manager=manager, worker=worker, job_id=job_id,
                    max_attempts=max_attempts, timeout=timeout, result_ttl=result_ttl,
                    tags=check_tags(tags), track=track, priority=priority,
                    depends_on=depending.dependency_ids(depends_on),
                    on_dependency_failure=on_dependency_failure, delay=delay, at=at)
        return JobHandle(self.queue_call(call), self)

    # -- job records -----------------------------------------------------------

    def job(self, job_id: str) -> JobHandle:
        """A handle on any job by its id, from any process: state, result(), info(), cancel()."""
        return JobHandle(job_id, self)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: True if it will not run (again); see :meth:`JobHandle.cancel`."""
        return records.cancel(self._store, job_id)

    def set_priority(self, job_id: str, priority: int) -> bool:
        """Give a queued job a new priority (lower runs sooner); False if it is not queued."""
        return records.set_priority(self._store, job_id, priority)

    def track(self, *job_ids: str) -> dict[str, bool]:
        """Keep these jobs' records until untracked; id -> False for an id with no record."""
        return records.track(self._store, job_ids)

    def untrack(self, *job_ids: str) -> dict[str, bool]:
        """Stop tracking; a settled record then expires after its ``result_ttl``."""
        return records.untrack(self._store, job_ids)

    def tracked(self) -> list[str]:
        """Ids of the tracked jobs."""
        return records.tracked(self._store)

    def find_jobs(self, *, state: Optional[str] = None, tag: Optional[str] = None, task: Optional[str] = None,
                  limit: int = 50) -> list[JobInfo]:
        """Jobs by ``state``, ``tag`` and ``task``, most recent first (see :func:`qw.records.search`)."""
        return records.search(self._store, state=state, tag=tag, task=task, limit=limit)

    # -- recurring schedules -------------------------------------------------

    def recur(
        self,
        name: str,
        *,
        task: Optional[str] = None,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        data: Optional[Mapping[str, Any]] = None,
        every: Optional[Delay] = None,
        offset: Delay = 0,
        cron: Optional[str] = None,
        tz: Optional[str] = None,
        queue: Optional[str] = None,
        manager: Optional[str] = None,
        catchup: str = "skip",
        max_catchup: int = DEFAULT_MAX_CATCHUP,
        no_overlap: bool = False,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> str:
        """Create or replace the schedule ``name``; ``"created"``, ``"replaced"`` or ``"unchanged"``.

        It queues a call of ``task`` (with ``args``, ``kwargs``) or a job
        with ``data``, one of them, to ``queue`` or ``manager``: every
        ``every`` seconds (a timedelta too) on absolute time, shifted by
        ``offset``, or on ``cron`` (five fields, or ``@daily``...) in time
        zone ``tz``. Every manager fires it; each due time fires once.
        ``catchup`` says what to do about fires every manager missed:
        ``skip``, ``latest`` or ``all`` (at most ``max_catchup``);
        ``no_overlap`` skips a fire while the last run is unfinished.
        Everything is checked before anything is written.
        """
        rule = Recurrence(every=every, offset=offset, cron=cron, tz=tz, catchup=catchup,
                          max_catchup=max_catchup)
        schedule = recurring.Schedule(name, rule, task=task, args=list(args), kwargs=dict(kwargs or {}),
                                      data=None if data is None else dict(data), queue=queue, manager=manager,
                                      no_overlap=no_overlap, max_attempts=max_attempts, timeout=timeout)
        return ("unchanged", "created", "replaced")[recurring.define(self._store, schedule)]

    def recurring(self) -> list[dict[str, Any]]:
        """Every recurring schedule: its definition, next and last fire, the last run's outcome, counts."""
        return recurring.listing(self._store)

    def unrecur(self, name: str) -> bool:
        """Delete the schedule ``name`` (runs already queued stay); False if there was none."""
        return recurring.remove(self._store, validate_schedule_name(name))

    def pause_recurring(self, name: str) -> None:
        """Stop firing ``name`` until :meth:`resume_recurring`; fires meanwhile are not made up."""
        recurring.pause(self._store, validate_schedule_name(name))

    def resume_recurring(self, name: str) -> None:
        """Fire ``name`` again, from its next due time after now."""
        recurring.resume(self._store, validate_schedule_name(name))

    def run_recurring_now(self, name: str) -> str:
        """Queue one run of ``name`` now, outside its sequence; its job id."""
        return recurring.run_now(self._store, self._producer, validate_schedule_name(name))

    def fire_recurring(self, now: float) -> int:
        """Fire the schedules due at ``now`` (Redis's clock): what a manager's scheduler calls."""
        return recurring.fire_due(self._store, self._producer, now)

    # -- taking jobs (the seed API; Worker uses Claimer directly) ----------

    def fetch_next_job(
        self, manager: str, worker: str, timeout: float = 10
    ) -> Optional[tuple[str, dict[str, Any]]]:
        """Claim the next job for ``worker`` of ``manager``: ``(job_id, job_data)``.

        Waits up to ``timeout`` seconds; None when nothing came. The id stays
        in ``<worker>:jobs`` until :meth:`finish_job`.
        """
        return seed.fetch_next_job(self._store, manager, worker, timeout)

    def finish_job(self, job_id: str, worker_name: str) -> bool:
        """Acknowledge a job: delete its hash and its id from the worker's list, atomically.

        False when the id was not in that worker's list (nothing changed).
        """
        return seed.finish_job(self._store, job_id, worker_name)

    # -- inspection ----------------------------------------------------------

    def get_all_managers(self) -> list[str]:
        """Names of registered managers, sorted."""
        return inspection.get_all_managers(self._store)

    def get_manager_holder(self, manager: str) -> Optional[str]:
        """Who holds ``manager``'s lease ("pid N on HOST (...)"), or None if it lapsed."""
        return inspection.get_manager_holder(self._store, manager)

    def get_manager_workers(self, manager: str) -> list[str]:
        """Worker names of ``manager``, sorted."""
        return inspection.get_manager_workers(self._store, manager)

    def get_worker_pending_jobs(self, worker: str) -> list[str]:
        """Ids in ``worker``'s in-progress list, the one it runs (or runs next) first."""
        return inspection.get_worker_pending_jobs(self._store, worker)

    def get_manager_queued_jobs(self, manager: str) -> list[str]:
        """Ids waiting in ``<manager>:jobs``, next to run first."""
        return inspection.get_manager_queued_jobs(self._store, manager)

    def get_all_queued_jobs(self) -> list[str]:
        """Ids waiting in ``all:jobs``, next to run first."""
        return inspection.get_all_queued_jobs(self._store)

    def get_all_pending_jobs(self) -> dict[str, list[str]]:
        """In-progress ids of every registered worker, by worker name."""
        return inspection.get_all_pending_jobs(self._store)

    def get_scheduled_jobs(self) -> list[tuple[str, float]]:
        """Delayed jobs and jobs waiting for a retry, ``(job_id, due_at)`` (unix seconds), soonest first."""
        return inspection.get_scheduled_jobs(self._store)

    def get_stats(self, manager: Optional[str] = None, *, task: Optional[str] = None,
                  queue: Optional[str] = None) -> dict[str, Any]:
        """Throughput, failures, wait and run time percentiles: of ``manager``, of one ``task`` or
        named ``queue`` (over all managers), or of all.

        Windows of the last 1, 5, 15 and 60 minutes and of the whole history
        by minute, then one entry per day, newest first. The history is the
        one the manager (or, for all, the first live manager) keeps. Per
        task and queue, ``queued`` and ``requeued`` are not kept (None).
        """
        return inspection.get_stats(self._store, manager, task=task, queue=queue)

    def get_tasks(self, manager: Optional[str] = None, name_filter: str = "") -> dict[str, Any]:
        """Per task: how many live workers can run it, how many of its jobs run now, how many wait.

        Over every live manager, or ``manager`` only; tasks whose name
        contains ``name_filter``. See :func:`qw.census.task_table`, which
        caps the ids read per queue (``queued_capped`` says when it did).
        """
        with translated(self._store.config):
            return census.task_table(self._store, manager, name_filter)

    def get_manager_info(self, manager: str) -> dict[str, Any]:
        """What a live manager publishes about itself each tick (``<manager>:info``); {} if none."""
        return inspection.get_manager_info(self._store, manager)

    def get_orphaned_managers(self) -> list[str]:
        """Departed managers whose own queue still holds jobs, sorted."""
        return inspection.get_orphaned_managers(self._store)

    def get_manager_health(self, manager: str) -> dict[str, dict[str, Any]]:
        """What ``manager`` last published about each worker: pid, busy_for, since_last_claim, at."""
        return inspection.get_manager_health(self._store, manager)

    def get_job(self, job_id: str) -> Optional[dict[str, Any]]:
        """The data of a job still stored (queued, in progress or failed), else None."""
        return inspection.get_job(self._store, job_id)

    # -- the failed list -----------------------------------------------------

    def get_failed_jobs(self) -> list[FailedJob]:
        """The failed list, most recent first, with each job's reason and data."""
        return failed.get_failed_jobs(self._store)

    def retry_failed(self, job_ids: Iterable[str]) -> dict[str, str]:
        """Queue failed jobs again with their attempts reset; say what became of each id.

        Each id maps to ``"queued"``, ``"not failed"`` (not in the failed
        list) or ``"no data"`` (a dangling id: nothing to run).
        """
        return failed.retry_failed(self._store, job_ids)

    def retry_all_failed(self) -> dict[str, str]:
        """:meth:`retry_failed` on every id in the failed list."""
        return failed.retry_all_failed(self._store)

    def delete_failed(self, job_ids: Iterable[str]) -> dict[str, str]:
        """Delete failed jobs (id and hash); each id maps to ``"deleted"`` or ``"not failed"``."""
        return failed.delete_failed(self._store, job_ids)

    def purge_failed(self) -> int:
        """Delete every failed job (its id and its hash); return how many."""
        return failed.purge_failed(self._store)

    # -- control -------------------------------------------------------------

    def control(self, manager: str, command: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """Send ``command`` to ``manager`` and wait for its answer: ``scale`` (``n=``),
        ``expand``, ``contract``, ``reload``, ``pause``, ``resume`` or ``stop``.

        Returns the answer (``ok``, ``message``, details); raises
        :class:`~qw.control.ControlError` when it is not running or does not
        answer within ``timeout`` seconds.
        """
        with translated(self._store.config):
            return send(self._store, validate_manager_name(manager), command, args, timeout)
