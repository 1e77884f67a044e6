"""Reading a job's record and acting on it: state, info, cancel, tracking, search.

Functions over a :class:`~qw.store.Store`, behind :class:`~qw.handle.JobHandle`
and the record methods of :class:`~qw.client.Client`. The record is the
job's own hash (docs/records.md); every state change happens in the
scripts, so what is read here is always one consistent picture.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional

from . import inspection
from . import job as jobcodec
from .call import ARGS_FIELD, KWARGS_FIELD, TASK_FIELD, _loads
from .connection import translated
from .exceptions import ConfigError, JobCancelled, JobFailed, JobNotFound
from .keeping import (
    DEFAULT_RESULT_TTL,
    HISTORY_FIELD,
    RESULT_FIELD,
    SETTLED,
    STATE_FIELD,
    check_priority,
    check_state,
)
from .keys import SHARED_QUEUE
from .store import Store, text

#: How long a cancelled plain job's record stays, when it did not say.
CANCELLED_TTL = 60


@dataclass(frozen=True)
class JobInfo:
    """Everything a job's record holds, as ``h.info()`` and ``qw-client job`` show it.

    ``data`` is a plain job's data; ``task``, ``args`` and ``kwargs`` a task
    job's call. ``result`` is the return value of a done job that kept it;
    ``error`` and ``traceback`` the last failure. Times are unix seconds
    (None when unknown); ``expires_in`` is how many seconds the record
    still stays (None: it stays until it settles, or it is tracked).
    """

    id: str
    state: str
    task: Optional[str] = None
    args: Optional[list[Any]] = None
    kwargs: Optional[dict[str, Any]] = None
    data: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str = ""
    traceback: str = ""
    attempts: int = 0
    worker: str = ""
    queue: str = ""
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    history: tuple[dict[str, Any], ...] = ()
    tags: tuple[str, ...] = ()
    tracked: bool = False
    expires_in: Optional[float] = None
    errors: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The info as plain JSON types (what ``--json`` prints)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["history"], out["tags"], out["errors"] = list(self.history), list(self.tags), list(self.errors)
        return out


def state_of(meta: dict[str, str]) -> str:
    """The state a hash's qw fields say (a plain producer's job has none: queued).

    A claim writes only ``qw:running`` (the hot path stays as cheap as it
    was): while it is there the job runs, whatever ``qw:state`` its last
    settling step left.
    """
    if meta.get("qw:running"):
        return "running"
    state = meta.get(STATE_FIELD)
    if state:
        return state
    if meta.get("qw:failed_at"):
        return "failed"
    return "queued"


def get_state(store: Store, job_id: str) -> str:
    """The job's state; :class:`JobNotFound` if it has no record."""
    key = store.keys.job(job_id)
    with translated(store.config):
        pipe = store.redis.pipeline(transaction=False)
        pipe.exists(key)
        pipe.hmget(key, STATE_FIELD, "qw:running", "qw:failed_at")
        exists, (state, running, failed_at) = pipe.execute()
    if not exists:
        raise JobNotFound(f"no such job: {job_id}")
    meta = {STATE_FIELD: text(state) if state else "", "qw:running": text(running) if running else "",
            "qw:failed_at": text(failed_at) if failed_at else ""}
    return state_of(meta)


def get_info(store: Store, job_id: str) -> JobInfo:
    """Everything the job's record holds; :class:`JobNotFound` if it has none."""
    key = store.keys.job(job_id)
    with translated(store.config):
        pipe = store.redis.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.ttl(key)
        raw, ttl = pipe.execute()
    if not raw:
        raise JobNotFound(f"no such job: {job_id}")
    info = info_from(job_id, raw, ttl)
    if info.state == "running" and not any(text(k) == HISTORY_FIELD for k in raw):
        # A claim writes qw:worker only for a job that keeps a record (the
        # hot path writes nothing more): a plain job's worker is the one
        # whose in-progress list holds it.
        info = replace(info, worker=running_on(store, job_id))
    return info


def running_on(store: Store, job_id: str) -> str:
    """The registered worker whose in-progress list holds ``job_id``, or ""."""
    managers = inspection.get_all_managers(store)
    workers = [w for m in managers for w in inspection.get_manager_workers(store, m)]
    with translated(store.config):
        pipe = store.redis.pipeline(transaction=False)
        for worker in workers:
            pipe.lpos(store.keys.worker_jobs(worker), job_id)
        found = pipe.execute() if workers else []
    return next((w for w, at in zip(workers, found) if at is not None), "")


def info_from(job_id: str, raw: dict[Any, Any], ttl: int = -1) -> JobInfo:
    """A :class:`JobInfo` from a job hash as HGETALL returns it (``ttl``: its TTL, -1 none)."""
    try:
        data, meta = jobcodec.decode(raw)
    except Exception:  # noqa: BLE001 - a record with undecodable data still has a state to show
        data, meta = {}, {text(k): text(v) for k, v in raw.items() if text(k).startswith("qw:")}
    errors = _json(meta.get("qw:errors"), [])
    last = errors[-1] if errors else {}
    origin = meta.get("qw:origin", "")
    return JobInfo(
        id=job_id,
        state=state_of(meta),
        task=meta.get(TASK_FIELD),
        args=_json(meta.get(ARGS_FIELD), [] if TASK_FIELD in meta else None),
        kwargs=_json(meta.get(KWARGS_FIELD), {} if TASK_FIELD in meta else None),
        data=data,
        result=_json(meta.get(RESULT_FIELD), None),
        error=meta.get("qw:error", ""),
        traceback=meta.get("qw:traceback", "") or last.get("traceback", ""),
        attempts=int(meta.get("qw:attempts", 0) or 0),
        worker=meta.get("qw:worker", ""),
        queue=_queue_name(origin),
        queued_at=_float(meta.get("qw:queued_at")),
        started_at=_float(meta.get("qw:started_at")),
        finished_at=_float(meta.get("qw:finished_at") or meta.get("qw:failed_at")),
        history=tuple(history_of(meta)),
        tags=tuple(_json(meta.get("qw:tags"), [])),
        tracked=meta.get("qw:tracked") == "1",
        expires_in=float(ttl) if ttl is not None and ttl >= 0 else None,
        errors=tuple(errors),
    )


# Events at the same instant, in the order they happen.
_EVENT_ORDER = {name: i for i, name in enumerate(
    ("queued", "scheduled", "waiting", "released", "claimed", "completed", "retry", "requeued", "failed",
     "done", "cancelled"))}


def history_of(meta: dict[str, str]) -> list[dict[str, Any]]:
    """A record's events in order: those stored in ``qw:history``, and those its fields imply.

    A claim writes only ``qw:started_at`` and ``qw:worker``, and the done
    step only ``qw:finished_at`` (one write less each, and a record small
    enough for Redis's compact hashes); an event that ends a run without
    settling the job stores that run's claim (``claimed``: its time).
    """
    stored = _json(meta.get("qw:history"), None)
    if not isinstance(stored, list):
        return []
    events: list[dict[str, Any]] = []
    claims = set()
    for event in stored:
        if not isinstance(event, dict):
            continue
        event = dict(event)
        claimed = event.pop("claimed", None)
        if isinstance(claimed, (int, float)):
            claims.add(round(claimed, 6))
            events.append({"event": "claimed", "at": claimed, "worker": event.get("worker", "")})
        events.append(event)
    started = _float(meta.get("qw:started_at"))
    if started is not None and round(started, 6) not in claims:
        events.append({"event": "claimed", "at": started, "worker": meta.get("qw:worker", "")})
    finished = _float(meta.get("qw:finished_at"))
    if meta.get(STATE_FIELD) == "done" and finished is not None:
        events.append({"event": "done", "at": finished})
    # To the microsecond, as the scripts write them: one script's events share one instant.
    events.sort(key=lambda e: (round(e.get("at") or 0, 6), _EVENT_ORDER.get(e.get("event"), 99)))
    return events


def outcome(info: JobInfo) -> Any:
    """A settled job's result, or the exception its failure or cancellation raises."""
    if info.state == "done":
        return info.result
    if info.state == "failed":
        raise JobFailed(info.id, info.error or "failed", info.traceback, info.attempts)
    if info.state == "cancelled":
        raise JobCancelled(f"job {info.id} was cancelled")
    raise AssertionError(f"job {info.id} has not settled: {info.state}")  # pragma: no cover


def decode_result(text_: str) -> Any:
    """A result as the record (or a waiter's token) holds it, JSON; None for none."""
    return _json(text_, None)


def cancel(store: Store, job_id: str) -> bool:
    """Cancel the job: True if it will not run (again), False if it had already settled.

    A queued, scheduled or retrying job is taken out at once; a running one
    is marked, and its manager stops that run. :class:`JobNotFound` for no record.
    """
    keys = store.keys
    with translated(store.config):
        outcome_, _detail = store.scripts.cancel(
            keys=[keys.job(job_id), keys.all_scheduled],
            args=[job_id, keys.namespace, CANCELLED_TTL, uuid.uuid4().hex])
    outcome_, detail = text(outcome_), text(_detail)
    if outcome_ == "missing":
        raise JobNotFound(f"no such job: {job_id}")
    return detail != "settled" and outcome_ in ("cancelled", "running")


def set_priority(store: Store, job_id: str, priority: int) -> bool:
    """Move a queued job to its new place for ``priority``: True, or False when it is not queued.

    :class:`JobNotFound` for no record; :class:`ConfigError` for a job
    queued to one worker (its list keeps arrival order) or a bad priority.
    """
    check_priority(priority)
    with translated(store.config):
        answer = text(store.scripts.set_priority(keys=[store.keys.job(job_id)],
                                                 args=[job_id, store.keys.namespace, priority]))
    if answer == "missing":
        raise JobNotFound(f"no such job: {job_id}")
    if answer == "worker":
        raise ConfigError(f"job {job_id} is queued to one worker, whose list keeps arrival order")
    return answer == "ok"


def track(store: Store, job_ids: Iterable[str]) -> dict[str, bool]:
    """Keep these jobs' records until untracked: id -> True, or False for an id with no record."""
    keys = store.keys
    out = {}
    with translated(store.config):
        for job_id in job_ids:
            out[job_id] = bool(store.scripts.track(keys=[keys.job(job_id), keys.all_tracked],
                                                  args=[job_id, "1"]))
    return out


def untrack(store: Store, job_ids: Iterable[str], ttl: int = DEFAULT_RESULT_TTL) -> dict[str, bool]:
    """Stop tracking: a settled record then expires after its ``result_ttl`` (else ``ttl``)."""
    keys = store.keys
    out = {}
    with translated(store.config):
        for job_id in job_ids:
            out[job_id] = bool(store.scripts.track(keys=[keys.job(job_id), keys.all_tracked],
                                                  args=[job_id, "0", ttl]))
    return out


def tracked(store: Store) -> list[str]:
    """Ids of tracked jobs whose record still exists, sorted."""
    with translated(store.config):
        return sorted(text(i) for i in store.redis.smembers(store.keys.all_tracked))


def search(store: Store, *, state: Optional[str] = None, tag: Optional[str] = None,
           task: Optional[str] = None, limit: int = 50) -> list[JobInfo]:
    """Jobs by tag, state and task, most recent first, at most ``limit``.

    With a tag, its index (``all:tag:<tag>``) is read, dropping ids whose
    record has expired. Without one, the places a state lives are read:
    the queues, the in-progress lists, the scheduled set, the failed list,
    and the index of finished records (``all:finished``).
    """
    if state is not None:
        check_state(state)
    keys = store.keys
    with translated(store.config):
        if tag is not None:
            ids = [text(i) for i in store.redis.zrevrange(keys.tag(tag), 0, max(limit * 4, 200))]
        else:
            ids = _candidates(store, state, limit)
        found: list[JobInfo] = []
        gone: list[str] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            pipe = store.redis.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hgetall(keys.job(job_id))
            for job_id, raw in zip(chunk, pipe.execute()):
                if not raw:
                    gone.append(job_id)
                    continue
                info = info_from(job_id, raw)
                if (state is None or info.state == state) and (task is None or info.task == task):
                    found.append(info)
            if len(found) >= limit:
                break
        if tag is not None and gone:
            store.redis.zrem(keys.tag(tag), *gone)  # lazily, as a reader finds them
    found.sort(key=lambda i: -(i.finished_at or i.started_at or i.queued_at or 0))
    return found[:limit]


def _candidates(store: Store, state: Optional[str], limit: int) -> list[str]:
    keys, r = store.keys, store.redis
    ids: list[str] = []
    wanted = {state} if state else None

    def want(*states: str) -> bool:
        return wanted is None or bool(wanted & set(states))

    if want("done", "cancelled"):
        ids += [text(i) for i in r.zrevrange(keys.all_finished, 0, limit * 4)]
    if want("failed"):
        ids += [text(i) for i in r.lrange(keys.all_failed, 0, limit * 4)]
    if want("scheduled", "retrying"):
        ids += [text(i) for i in r.zrange(keys.all_scheduled, 0, limit * 4)]
    if want("running", "queued"):
        for manager in sorted(text(m) for m in r.smembers(keys.all_managers)):
            for worker in sorted(text(w) for w in r.smembers(keys.manager_workers(manager))):
                ids += [text(i) for i in r.lrange(keys.worker_jobs(worker), 0, -1)]
            if want("queued"):
                ids += [text(i) for i in r.lrange(keys.manager_jobs(manager), -limit * 4, -1)]
    if want("queued"):
        ids += [text(i) for i in r.lrange(keys.all_jobs, -limit * 4, -1)]
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def _queue_name(origin: str) -> str:
    # all:queue:<name> -> <name>; all:jobs -> "all"; anything else as it is.
    marker = "all:queue:"
    if marker in origin:
        return origin.split(marker, 1)[1]
    if origin.endswith("all:jobs"):
        return SHARED_QUEUE
    return origin


def _json(value: Optional[str], default: Any) -> Any:
    if value is None or value == "":
        return default
    try:
        return _loads(value)
    except ValueError:
        return default


def _float(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def settled(state: str) -> bool:
    return state in SETTLED

