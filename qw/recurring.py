"""Recurring schedules in Redis: define, list, pause, remove, and fire them exactly once.

A schedule lives in ``all:recurring:<name>`` (its definition as JSON, a
version, the next and last fire, counts) and, unless paused, in the zset
``all:recurring`` scored by its next due time. Every manager's scheduler
(:mod:`qw.duties.scheduler`) reads the earliest due time and, when one is
due, computes what to fire (:func:`qw.recurrence.plan`, a pure function)
and fires it with ``fire_recurring-4.lua``, which first checks that the
schedule still waits for that very due time: each due time fires once,
whichever managers run, with no lock. A run's job id is
``<name>@<due time, ISO 8601 UTC>``, and its hash holds ``qw:recur`` (the
schedule) and ``qw:recur_due`` (the due time), which
``qw.current_job()`` shows as ``schedule`` and ``due``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from . import job as jobcodec
from .call import Call
from .connection import translated, unblock
from .exceptions import ConfigError
from .keys import validate_manager_name, validate_queue_name, validate_schedule_name
from .queuing import Producer, job_options
from .recurrence import Plan, Recurrence, plan
from .store import Store, text

log = logging.getLogger("qw.schedule")

RECUR_FIELD = "qw:recur"
RECUR_DUE_FIELD = "qw:recur_due"
#: Schedules one scheduler step fires at most; the next step goes on.
FIRE_BATCH = 50
#: Seconds a wake token waits for a scheduler (as in lib/schedule.lua).
WAKE_TTL = 10
#: Schedules a listing shows at most.
LIST_CAP = 10_000


@dataclass(frozen=True)
class Schedule:
    """A recurring schedule: its ``name``, when it fires (``rule``), what it queues (a ``task``
    with ``args`` and ``kwargs``, or job ``data``), where (``queue`` or ``manager``) and how."""

    name: str
    rule: Recurrence
    task: Optional[str] = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: Optional[dict[str, Any]] = None
    queue: Optional[str] = None
    manager: Optional[str] = None
    no_overlap: bool = False
    max_attempts: Optional[int] = None
    timeout: Optional[float] = None

    def __post_init__(self) -> None:
        validate_schedule_name(self.name)
        if (self.task is None) == (self.data is None):
            raise ConfigError(f"schedule {self.name}: give a task or data, one of them")
        if self.task is not None:
            self.fields()  # checks the task name and that the arguments are JSON
        elif not isinstance(self.data, Mapping):
            raise ConfigError(f"schedule {self.name}: data must be a JSON object")
        else:
            jobcodec.encode(self.data)
        if self.queue is not None:
            validate_queue_name(self.queue)
            if self.manager is not None:
                raise ConfigError(f"schedule {self.name}: a queue or a manager, not both")
        if self.manager is not None:
            validate_manager_name(self.manager)
        job_options(self.max_attempts, self.timeout)

    def fields(self) -> dict[str, str]:
        """A run's hash fields, before qw's routing fields."""
        if self.task is not None:
            return Call(self.task, self.args, self.kwargs).meta()
        return jobcodec.encode(self.data or {})

    def definition(self) -> str:
        """The definition as stored: JSON with sorted keys (its hash is the version)."""
        body = asdict(self)
        body["rule"] = asdict(self.rule)
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @property
    def version(self) -> str:
        return hashlib.sha1(self.definition().encode()).hexdigest()[:16]

    @classmethod
    def from_definition(cls, text_: str) -> Schedule:
        body = json.loads(text_)
        body["rule"] = Recurrence(**body["rule"])
        return cls(**body)


def run_id(name: str, due: float) -> str:
    """The job id of the run of schedule ``name`` due at ``due``: ``name@2026-12-24T08:00:00Z``."""
    moment = datetime.fromtimestamp(round(due, 3), timezone.utc)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        stamp += f".{moment.microsecond // 1000:03d}"
    return f"{name}@{stamp}Z"


def redis_now(store: Store) -> float:
    """Redis's clock (unix seconds)."""
    seconds, micros = store.redis.time()
    return seconds + micros / 1e6


def define(store: Store, schedule: Schedule) -> int:
    """Write ``schedule`` (``recur-3.lua``): 0 unchanged, 1 created, 2 replaced (its next due time
    recomputed); a scheduler is woken to read it."""
    keys = store.keys
    with translated(store.config):
        now = redis_now(store)
        return int(store.scripts.recur(
            keys=[keys.all_recurring, keys.recurring(schedule.name), keys.all_scheduled_wake],
            args=[schedule.name, schedule.definition(), schedule.version, repr(schedule.rule.next_after(now)),
                  repr(now)]))


def listing(store: Store) -> list[dict[str, Any]]:
    """Every schedule, by name: its definition, next and last fire, the last run's state, counts."""
    keys = store.keys
    with translated(store.config):
        names = sorted(text(n) for n in store.redis.zrange(keys.all_recurring, 0, LIST_CAP - 1))
        pipe = store.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.recurring(name))
        rows = []
        for name, raw in zip(names, pipe.execute()):
            if raw:
                rows.append(_row(name, {text(k): text(v) for k, v in raw.items()}))
        pipe = store.redis.pipeline(transaction=False)
        for row in rows:
            if row["last_job"]:
                pipe.hmget(keys.job(row["last_job"]), "qw:state", "qw:failed_at", "qw:running")
            else:
                pipe.ping()
        for row, last in zip(rows, pipe.execute()):
            row["last_outcome"] = _outcome(row["last_job"], last)
    return rows


def _row(name: str, raw: dict[str, str]) -> dict[str, Any]:
    schedule = Schedule.from_definition(raw["definition"])
    def when(key: str) -> Optional[float]:
        return float(raw[key]) if raw.get(key) else None
    return {
        "name": name, "when": schedule.rule.describe(), "task": schedule.task, "data": schedule.data,
        "args": schedule.args, "kwargs": schedule.kwargs, "queue": schedule.queue,
        "manager": schedule.manager, "catchup": schedule.rule.catchup, "no_overlap": schedule.no_overlap,
        "paused": raw.get("paused") == "1",
        "next": None if raw.get("paused") == "1" else when("next"), "last": when("last"),
        "last_job": raw.get("last_job"), "fired": int(raw.get("fired", 0)),
        "skipped_overlaps": int(raw.get("skipped", 0)), "missed": int(raw.get("missed", 0)),
    }


def _outcome(job_id: Optional[str], last: Any) -> Optional[str]:
    if not job_id:
        return None
    if not isinstance(last, list) or last == [None, None, None]:
        return "finished"  # its hash is gone: done (a record kept would say so), or expired
    state, failed_at, running = (text(x) if x is not None else None for x in last)
    if running:
        return "running"
    return "failed" if failed_at else (state or "queued")


def get(store: Store, name: str) -> Schedule:
    """The schedule called ``name``, or :class:`ConfigError` if there is none."""
    raw = store.redis.hget(store.keys.recurring(name), "definition")
    if raw is None:
        raise ConfigError(f"no recurring schedule called {name!r}")
    return Schedule.from_definition(text(raw))


def remove(store: Store, name: str) -> bool:
    """Delete schedule ``name``; False if there was none. Runs already queued stay."""
    keys = store.keys
    with translated(store.config):
        pipe = store.redis.pipeline()
        pipe.zrem(keys.all_recurring, name)
        pipe.delete(keys.recurring(name))
        return bool(pipe.execute()[-1])


def pause(store: Store, name: str) -> None:
    """Stop firing ``name`` until :func:`resume`; fires that fall meanwhile are not made up."""
    keys = store.keys
    with translated(store.config):
        get(store, name)
        pipe = store.redis.pipeline()
        pipe.hset(keys.recurring(name), "paused", "1")
        pipe.zadd(keys.all_recurring, {name: "+inf"})  # listed, never due
        pipe.execute()


def resume(store: Store, name: str) -> None:
    """Fire ``name`` again, from its next due time after now."""
    keys = store.keys
    with translated(store.config):
        schedule = get(store, name)
        due = schedule.rule.next_after(redis_now(store))
        pipe = store.redis.pipeline()
        pipe.hdel(keys.recurring(name), "paused")
        pipe.hset(keys.recurring(name), "next", repr(due))
        pipe.zadd(keys.all_recurring, {name: due})
        pipe.rpush(keys.all_scheduled_wake, "1")  # a scheduler reads the new due time at once
        pipe.ltrim(keys.all_scheduled_wake, -1, -1)
        pipe.expire(keys.all_scheduled_wake, WAKE_TTL)
        pipe.execute()


def run_now(store: Store, producer: Producer, name: str) -> str:
    """Queue one run of ``name`` now, outside its sequence (its next due time stays); the job id."""
    with translated(store.config):
        schedule = get(store, name)
        version = text(store.redis.hget(store.keys.recurring(name), "version") or b"")
        now = round(redis_now(store), 3)  # as the job id shows it
        fired = fire(store, producer, schedule, version, None, Plan((now,), 0.0))
        if fired < 0:
            raise ConfigError(f"schedule {name!r} changed meanwhile; try again")
    return run_id(name, now)


# Definitions read, by schedule key: (version, schedule). A fire names the
# version it computed from, and the script refuses a stale one (-2): then the
# definition is read again. A schedule that fires often costs no read.
_known: dict[str, tuple[str, Schedule]] = {}
STALE = -2


def fire_due(store: Store, producer: Producer, now: float) -> int:
    """Fire the schedules due at ``now`` (Redis's clock), at most :data:`FIRE_BATCH`; runs queued."""
    keys = store.keys
    due = store.redis.zrangebyscore(keys.all_recurring, "-inf", now, start=0, num=FIRE_BATCH, withscores=True)
    queued = 0
    for raw_name, score in due:
        name = text(raw_name)
        key = keys.recurring(name)
        fired, known = STALE, _known.get(key)
        for _attempt in range(2):  # what was known, else (or if stale) a fresh read
            if known is None:
                known = _read(store, name)
                if known is None:
                    break
            version, schedule = known
            what = plan(schedule.rule, score, now)
            fired = fire(store, producer, schedule, version, score, what)
            if fired != STALE:
                _known[key] = known
                break
            _known.pop(key, None)
            known = None
        if fired > 0:
            queued += fired
        if fired >= 0 and what.missed:
            log.warning("schedule %s: %d fire(s) missed while no manager ran were skipped (catchup=%s)",
                        name, what.missed, schedule.rule.catchup)
    return queued


def _read(store: Store, name: str) -> Optional[tuple[str, Schedule]]:
    """A schedule's version and definition from Redis; None (and unlisted) when it cannot be used."""
    keys = store.keys
    raw = store.redis.hmget(keys.recurring(name), "definition", "version")
    if raw[0] is None:
        store.redis.zrem(keys.all_recurring, name)  # its hash is gone: a half-removed schedule
        return None
    try:
        return text(raw[1] or b""), Schedule.from_definition(text(raw[0]))
    except (ConfigError, ValueError, TypeError, KeyError) as exc:
        log.error("schedule %s: its definition cannot be read (%s); paused", name, exc)
        store.redis.zadd(keys.all_recurring, {name: "+inf"})
        store.redis.hset(keys.recurring(name), "paused", "1")
        return None


def fire(store: Store, producer: Producer, schedule: Schedule, version: str, expected: Optional[float],
         what: Plan) -> int:
    """Run ``fire_recurring-4.lua``: the runs of ``what``; -1 when another manager was first (or the
    schedule was paused or removed), -2 (:data:`STALE`) when its definition changed."""
    keys = store.keys
    list_key, _workers, idle, wake, _check, _rank = producer.target(schedule.manager, None, schedule.queue)
    base = schedule.fields()
    base["qw:origin"] = list_key
    base.update(job_options(schedule.max_attempts, schedule.timeout))
    base[RECUR_FIELD] = schedule.name
    runs: list[str] = []
    width = len(base) + 2
    for due in what.fires:
        fields = {**base, RECUR_DUE_FIELD: repr(due), "qw:queued_at": repr(due)}
        runs += [run_id(schedule.name, due), repr(due)]
        for item in fields.items():
            runs.extend(item)
    args = [keys.job_prefix, schedule.name, "" if expected is None else repr(expected), version,
            "" if expected is None else repr(what.next_due), "1" if schedule.no_overlap else "0",
            "1" if wake else "0", what.missed, width, *runs]
    reply = store.scripts.fire_recurring(
        keys=[keys.all_recurring, keys.recurring(schedule.name), list_key, idle], args=args)
    fired = int(reply[0])
    ids = [int(x) for x in reply[2:]]
    unblock(store.redis, ids, keys.all_jobs)
    return fired
