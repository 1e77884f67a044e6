"""Jobs: one job's whole record, short summaries of many, and search over a bounded window.

A job's state is its ``qw:state`` where the results work writes one;
before that (and for a plain producer's job) it is told from where the id
is and from the fields qw left. Fields a version of qw does not write yet
(``qw:result``, ``qw:history``, ``qw:tags``) are shown when present.
Search reads at most :data:`SEARCH_WINDOW` ids (the next to run in each
queue, the newest failed, the soonest scheduled), then their summaries in
one pipelined round trip, and filters those: it never walks a whole list
or the keyspace, and the page says how far it looked.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from .. import job as jobcodec
from ..client import Client
from ..exceptions import JobDataError
from ..inspection import is_marker, member_id, priority_set
from ..keeping import STATES as KEPT_STATES
from ..store import text
from .places import Place

SEARCH_WINDOW = 2_000  # ids read per search, over all the places searched
STATES = KEPT_STATES  # queued, scheduled, waiting, running, retrying, done, failed, cancelled
_SUMMARY = ("qw:task", "qw:queued_at", "qw:state", "qw:error", "qw:attempts", "qw:failed_at", "qw:running",
            "qw:tags")


def summaries(client: Client, ids: Iterable[str], where: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """For each id (in order): task, when queued, state, last error, attempts; ``exists`` False if gone.

    ``where`` gives, per id, the state its place implies (used when no ``qw:state`` is stored).
    """
    ids = list(ids)
    if not ids:
        return []
    pipe = client.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.exists(client.keys.job(job_id))
        pipe.hmget(client.keys.job(job_id), *_SUMMARY)
    replies = pipe.execute()
    rows = []
    for i, job_id in enumerate(ids):
        values = dict(zip(_SUMMARY, (text(v) if v is not None else None for v in replies[2 * i + 1])))
        row = {"id": job_id, "exists": bool(replies[2 * i]), "task": values["qw:task"],
               "queued_at": _number(values["qw:queued_at"]), "error": values["qw:error"],
               "attempts": int(_number(values["qw:attempts"]) or 0),
               "failed_at": _number(values["qw:failed_at"]),
               "tags": _tags(values["qw:tags"])}
        row["state"] = state_of(values, where[i] if where else "")
        rows.append(row)
    return rows


def record(client: Client, job_id: str) -> Optional[dict[str, Any]]:
    """Everything kept about ``job_id``, decoded for display; None when no hash is stored."""
    keys = client.keys
    pipe = client.redis.pipeline(transaction=False)
    pipe.hgetall(keys.job(job_id))
    pipe.zscore(keys.all_scheduled, job_id)
    pipe.lpos(keys.all_failed, job_id)
    raw, due, failed_at_index = pipe.execute()
    if not raw:
        return None
    problem = None
    try:
        data, meta = jobcodec.decode(raw)
    except (JobDataError, UnicodeDecodeError) as exc:
        problem = f"its data cannot be decoded: {exc}"
        pairs = {text(k): text(v) for k, v in raw.items()}
        data = {k: v for k, v in pairs.items() if not k.startswith("qw:")}
        meta = {k: v for k, v in pairs.items() if k.startswith("qw:")}
    if meta.get("qw:running"):
        state = "running"
    elif meta.get("qw:state"):
        state = meta["qw:state"]
    elif failed_at_index is not None:
        state = "failed"
    elif due is not None:
        state = "scheduled"
    else:
        state = _guess(meta)
    shown = {"qw:task", "qw:args", "qw:kwargs", "qw:errors", "qw:error", "qw:traceback", "qw:result",
             "qw:history", "qw:tags", "qw:state"}
    return {
        "id": job_id, "state": state, "due_at": float(due) if due is not None else None, "problem": problem,
        "task": meta.get("qw:task"), "args": _json(meta.get("qw:args")),
        "kwargs": _json(meta.get("qw:kwargs")),
        "data": data, "attempts": int(_number(meta.get("qw:attempts")) or 0),
        "error": meta.get("qw:error"), "traceback": meta.get("qw:traceback"),
        "errors": _list(meta.get("qw:errors")), "result": _json(meta.get("qw:result")),
        "has_result": "qw:result" in meta, "history": _list(meta.get("qw:history")),
        "tags": _tags(meta.get("qw:tags")),
        "meta": {k: v for k, v in sorted(meta.items()) if k not in shown},
    }


def search(client: Client, places: list[Place], state: str, task: str, error: str, tag: str = "",
           window: int = SEARCH_WINDOW) -> dict[str, Any]:
    """Jobs in the chosen ``state`` (or any) whose task contains ``task``, error contains ``error``
    and tags (``qw:tags``, where kept) include ``tag``.

    Reads at most ``window`` ids; ``places`` are the queues and workers'
    lists to look in. Returns ``matches`` (``(id, the state its place
    implies)``, for :func:`summaries` of the page shown), ``looked_at``
    (ids read) and ``capped`` (True when some were left unread). Only a
    task, error or tag filter reads job hashes, three fields each.
    """
    keys = client.keys
    # (key, how to read it, the state of what is there, or "" where the record's qw:state says)
    sources: list[tuple[str, str, str]] = []
    if state in ("", "queued"):
        sources += [(p.key(client), "queue", "queued") for p in places if p.kind != "worker"]
        sources += [(priority_set(p.key(client)), "prio", "queued") for p in places if p.kind != "worker"]
    if state in ("", "running", "queued"):
        # A worker's list holds the job it runs and, with prefetch, some it holds: told by qw:running.
        sources += [(p.key(client), "queue", "") for p in places if p.kind == "worker"]
    if state in ("", "scheduled", "retrying"):
        sources.append((keys.all_scheduled, "zset", "scheduled"))
    if state in ("", "waiting"):
        sources.append((keys.all_waiting, "zset", "waiting"))
    if state in ("", "failed"):
        sources.append((keys.all_failed, "failed", "failed"))
    if state in ("", "done", "cancelled"):
        sources.append((keys.all_finished, "newest", ""))  # kept records of settled jobs
    pipe = client.redis.pipeline(transaction=False)
    for key, how, _state in sources:
        if how in ("zset", "prio", "newest"):
            pipe.zcard(key)
        else:
            pipe.llen(key)
    sizes = [int(n) for n in pipe.execute()] if sources else []
    shares = allot(sizes, window)
    reads = [(source, share) for source, share in zip(sources, shares) if share]
    pipe = client.redis.pipeline(transaction=False)
    for (key, how, _state), share in reads:
        if how == "queue":
            pipe.lrange(key, -share, -1)  # the next to run
        elif how in ("zset", "prio"):
            pipe.zrange(key, 0, share - 1)  # the soonest due, the first to run
        elif how == "newest":
            pipe.zrevrange(key, 0, share - 1)  # the latest settled
        else:
            pipe.lrange(key, 0, share - 1)  # the newest failed
    replies = pipe.execute() if reads else []
    found: list[tuple[str, str]] = []
    for ids_raw, ((_key, how, where), _share) in zip(replies, reads):
        if how == "prio":
            ids = [member_id(x) for x in ids_raw]
        else:
            ids = [text(x) for x in ids_raw if not is_marker(x)]
        found += [(job_id, where) for job_id in (reversed(ids) if how == "queue" else ids)]
    capped = sum(shares) < sum(sizes)
    looked_at = len(found)
    if task or error or tag or state:
        found = _matching(client, found, task.lower(), error.lower(), tag, state)
    return {"matches": found, "looked_at": looked_at, "capped": capped}


def _matching(client: Client, found: list[tuple[str, str]], task: str, error: str,
              tag: str, state: str) -> list[tuple[str, str]]:
    """The ids whose task and last error contain ``task`` and ``error`` (lower case), whose tags
    include ``tag`` and whose state is ``state``: a few fields each."""
    fields = ("qw:task", "qw:error", "qw:tags", "qw:state", "qw:running", "qw:failed_at")
    pipe = client.redis.pipeline(transaction=False)
    for job_id, _where in found:
        pipe.hmget(client.keys.job(job_id), *fields)
    kept = []
    for (job_id, where), values in zip(found, pipe.execute() if found else []):
        job_task, job_error, job_tags = values[:3]
        meta = dict(zip(fields, (text(v) if v is not None else None for v in values)))
        if state and state_of(meta, where) != state:
            continue
        if tag and (job_tags is None or tag not in _tags(text(job_tags))):
            continue
        if task and (job_task is None or task not in text(job_task).lower()):
            continue
        if error and (job_error is None or error not in text(job_error).lower()):
            continue
        kept.append((job_id, where))
    return kept


def allot(sizes: list[int], budget: int) -> list[int]:
    """How many ids to read from each place: a small one whole, the rest of ``budget`` shared evenly."""
    shares = [0] * len(sizes)
    pending = sorted(range(len(sizes)), key=lambda i: sizes[i])
    remaining = budget
    while pending:
        share = remaining // len(pending)
        smallest = pending[0]
        if sizes[smallest] > share:
            for i in pending:
                shares[i] = share
            break
        shares[smallest] = sizes[smallest]
        remaining -= sizes[smallest]
        pending.pop(0)
    return shares


def state_of(meta: dict[str, Any], where: str = "") -> str:
    """A job's state: its ``qw:state`` where kept, else what its place says, else told from its fields."""
    if meta.get("qw:running"):
        return "running"  # a claim writes only qw:running, not qw:state
    return meta.get("qw:state") or where or _guess(meta)


def _guess(meta: dict[str, Any]) -> str:
    """A state told from the fields qw leaves, where no ``qw:state`` is stored."""
    if meta.get("qw:running"):
        return "running"
    if meta.get("qw:failed_at"):
        return "failed"
    return "queued"


def _number(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _json(value: Optional[str]) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value  # shown as the text it is


def _list(value: Optional[str]) -> list[Any]:
    decoded = _json(value)
    return decoded if isinstance(decoded, list) else []


def _tags(value: Optional[str]) -> list[str]:
    return [t for t in _list(value) if isinstance(t, str)]
