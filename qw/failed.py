"""The failed list (``all:failed``): :class:`FailedJob`, reading it, retrying, purging.

Functions over a :class:`~qw.store.Store`, behind the failed-job methods of
:class:`~qw.client.Client`. A retry is one ``retry_failed-3.lua`` call per
id; a purge takes slices off the list with their hashes in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from . import job as jobcodec
from .connection import translated
from .store import Store, text

PURGE_SLICE = 500  # ids (and hashes) deleted per transaction by purge_failed


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


def get_failed_jobs(store: Store) -> list[FailedJob]:
    """The failed list, most recent first, with each job's reason and data."""
    with translated(store.config):
        ids = [text(i) for i in store.redis.lrange(store.keys.all_failed, 0, -1)]
        pipe = store.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(store.keys.job(job_id))
        hashes = pipe.execute() if ids else []
    return [_failed_job(job_id, raw) for job_id, raw in zip(ids, hashes)]


def retry_failed(store: Store, job_ids: Iterable[str]) -> dict[str, str]:
    """Queue failed jobs again with their attempts reset.

    Each id maps to ``"queued"``, ``"not failed"``, ``"no data"`` (dangling),
    ``"waiting"`` (for dependencies not done yet) or ``"dependency failed"``
    (one it depends on failed or was cancelled: retry that one first).
    """
    outcome = {1: "queued", 0: "not failed", -1: "no data", 2: "waiting", -2: "dependency failed"}
    keys = store.keys
    result = {}
    with translated(store.config):
        for job_id in job_ids:
            done = store.scripts.retry_failed(
                keys=[keys.all_failed, keys.job(job_id), keys.all_jobs],
                args=[job_id, keys.namespace],
            )
            result[job_id] = outcome[int(done)]
    return result


def retry_all_failed(store: Store) -> dict[str, str]:
    """:func:`retry_failed` on every id in the failed list."""
    return retry_failed(store, (job.id for job in get_failed_jobs(store)))


def purge_failed(store: Store) -> int:
    """Delete every failed job (its id and its hash); return how many."""
    keys = store.keys
    count = 0
    with translated(store.config):
        while True:
            # Take a slice off the list and delete its hashes in one transaction.
            ids = store.redis.lrange(keys.all_failed, -PURGE_SLICE, -1)
            if not ids:
                return count
            pipe = store.redis.pipeline(transaction=True)
            pipe.ltrim(keys.all_failed, 0, -len(ids) - 1)
            pipe.delete(*(keys.job(text(i)) for i in ids))
            pipe.execute()
            count += len(ids)


def delete_failed(store: Store, job_ids: Iterable[str]) -> dict[str, str]:
    """Delete failed jobs (each id and its hash); each id maps to ``"deleted"`` or ``"not failed"``.

    The id leaves the failed list first: only the caller that removed it
    deletes the hash, so a retry of the same id at the same moment wins or
    loses whole, and a job that is no longer failed is never deleted.
    """
    keys = store.keys
    result = {}
    with translated(store.config):
        for job_id in job_ids:
            removed = store.redis.lrem(keys.all_failed, 0, job_id)
            if removed:
                store.redis.delete(keys.job(job_id))
            result[job_id] = "deleted" if removed else "not failed"
    return result


def _failed_job(job_id: str, raw: dict[bytes, bytes]) -> FailedJob:
    try:
        data, meta = jobcodec.decode(raw)
    except Exception:  # the reason it failed may be that it is undecodable
        data, meta = {}, {text(k): text(v) for k, v in raw.items()}
    failed_at = meta.get("qw:failed_at")
    try:
        errors = tuple(json.loads(meta.get("qw:errors", "[]")))
    except ValueError:
        errors = ()
    return FailedJob(
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
