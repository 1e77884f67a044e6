"""The failed list grouped by error type, over its newest :data:`WINDOW` entries.

A group is the exception's class name, the part of ``qw:error`` before its
first ``:`` ("ValueError: bad input" is ``ValueError``). Grouping reads a
bounded window, so a failed list of any length costs the same; the page
says when it stopped short. Actions on a group recompute its ids from the
same window when they run, so they act on what is failed then.
"""

from __future__ import annotations

import re
from typing import Any

from ..client import Client
from ..store import text

WINDOW = 2_000  # newest failed ids read to group them
_TYPE = re.compile(r"[A-Za-z_][\w.]{0,99}")
_FIELDS = ("qw:error", "qw:failed_at", "qw:task", "qw:attempts")


def error_type(error: str) -> str:
    """The group of an error line: its exception class name, "(no error)" or "(other)"."""
    if not error:
        return "(no error)"
    head = error.split(":", 1)[0].strip()
    return head if _TYPE.fullmatch(head) else "(other)"


def read(client: Client, window: int = WINDOW) -> dict[str, Any]:
    """The newest ``window`` failed jobs: ``jobs`` (newest first), ``groups``, ``total``, ``capped``."""
    keys = client.keys
    pipe = client.redis.pipeline(transaction=False)
    pipe.llen(keys.all_failed)
    pipe.lrange(keys.all_failed, 0, window - 1)
    total, raw_ids = pipe.execute()
    ids = [text(i) for i in raw_ids]
    pipe = client.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.job(job_id), *_FIELDS)
    values = pipe.execute() if ids else []
    jobs, groups = [], {}
    for job_id, fields in zip(ids, values):
        error, failed_at, task, attempts = (text(v) if v is not None else None for v in fields)
        kind = error_type(error or "")
        job = {"id": job_id, "error": error or "", "type": kind, "task": task,
               "failed_at": _float(failed_at), "attempts": int(_float(attempts) or 0)}
        jobs.append(job)
        group = groups.setdefault(kind, {"type": kind, "count": 0, "latest": job})
        group["count"] += 1
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["type"]))
    return {"jobs": jobs, "groups": ordered, "total": int(total), "capped": int(total) > len(ids),
            "window": window}


def ids_of_group(client: Client, kind: str, window: int = WINDOW) -> list[str]:
    """Ids of the failed jobs of group ``kind`` now, within the window."""
    return [job["id"] for job in read(client, window)["jobs"] if job["type"] == kind]


def _float(value: Any) -> Any:
    try:
        return float(value) if value else None
    except ValueError:
        return None
