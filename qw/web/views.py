"""The pages (GET): each reads what it shows and names a template; none changes anything.

A view is ``view(client, query, path) -> Page``; :mod:`qw.web.app` checks
access, runs it in a thread (redis-py is blocking) and renders the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

from .. import stats
from ..client import Client
from ..store import text
from . import charts, failures, jobs, managers, params
from .places import Place, depths, named, page_ids, served_queues

HOURS_MAX = 24  # of charts on the overview


@dataclass
class Page:
    """A template and what it shows."""

    template: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Redirect:
    """Go to another page of the dashboard (a path under its root, with its query)."""

    path: str


def overview(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """The front page: managers, queue depths, counts, the charts and the days."""
    rows = managers.managers(client)
    queues = _queue_rows(client, rows)
    keys = client.keys
    pipe = client.redis.pipeline(transaction=False)
    pipe.zcard(keys.all_scheduled)
    pipe.llen(keys.all_failed)
    pipe.zcard(keys.all_waiting)
    scheduled, failed, waiting = pipe.execute()
    in_progress = sum(1 for m in rows for w in m["workers"] if w["job"])
    # Figures of one task or named queue with ?task= or ?queue= (qw keeps those over all managers).
    scope = stats.Scope(task=params.optional_text(query, "task"), queue=params.optional_text(query, "queue"))
    hour = charts.recent(client, params.integer(query, "hours", 1, 1, HOURS_MAX), scope=scope)
    days = charts.days(client, scope=scope)
    return Page("overview.html", {
        "managers": rows, "queues": queues, "scheduled": int(scheduled), "failed": int(failed),
        "waiting": int(waiting),
        "in_progress": in_progress, "queued": sum(q["depth"] for q in queues), "hour": hour,
        "throughput": charts.throughput_svg(hour["series"], hour["step"]),
        "failure": charts.failure_svg(hour["series"]), "hours_choices": (1, 6, 24), "days": days,
        "task": scope.task or "", "queue": scope.queue or "",
    })


def queues(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """Every queue the dashboard knows of, with its depth and its next job's age."""
    return Page("queues.html", {"queues": _queue_rows(client, managers.managers(client)),
                                "scheduled": int(client.redis.zcard(client.keys.all_scheduled))})


def queue(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """One list (shared, named, a manager's, a worker's), a page of it, next to run first."""
    kind, name = path.get("kind", "shared"), path.get("name", "")
    if kind == "named":
        place = named(params.queue_name(name))
    elif kind == "manager":
        place = Place("manager", params.manager_name(name))
    elif kind == "worker":
        manager, _, slot = name.rpartition(":")
        if not slot.isdigit():
            raise params.BadRequest(f"{name[:40]!r} is not a worker name (expected <manager>:<n>)")
        place = Place("worker", f"{params.manager_name(manager)}:{slot}")
    elif kind == "shared":
        place = Place("shared")
    else:
        raise params.BadRequest(f"no such list: {kind[:20]!r} (named, manager, worker or shared)")
    number, size = params.page(query)
    ids, depth = page_ids(client, place, number, size)
    row = depths(client, [place])[0]
    return Page("queue.html", {"place": place, "row": row, "jobs": jobs.summaries(client, ids),
                               "page": number, "size": size, "depth": depth,
                               "pages": max(1, -(-depth // size))})


def scheduled(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """``all:scheduled``, soonest first, a page at a time (ZRANGE on the page only)."""
    number, size = params.page(query)
    key = client.keys.all_scheduled
    pipe = client.redis.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.zrange(key, (number - 1) * size, number * size - 1, withscores=True)
    count, entries = pipe.execute()
    due = {text(job_id): float(score) for job_id, score in entries}
    rows = jobs.summaries(client, list(due), ["scheduled"] * len(due))
    for row in rows:
        row["due_at"] = due[row["id"]]
    return Page("scheduled.html", {"jobs": rows, "count": int(count), "page": number, "size": size,
                                   "pages": max(1, -(-int(count) // size))})


def recurring(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """The recurring schedules: when each fires, what it queues, its last run and counts."""
    return Page("recurring.html", {"schedules": client.recurring()})


def workers(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """Each manager's workers (``?manager=`` for one): pid, job, how long, last claim, health."""
    wanted = params.text(query, "manager")
    rows = managers.managers(client)
    if wanted:
        rows = [m for m in rows if m["name"] == params.manager_name(wanted)]
    return Page("workers.html", {"managers": rows, "only": wanted})


def search(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page | Redirect:
    """Job search: ``?id=`` opens a job; ``state``, ``task``, ``error``, ``tag`` filter a bounded window."""
    job_id = params.text(query, "id")
    if job_id:
        return Redirect(f"/jobs/{_quote(job_id)}")
    state = params.choice(query, "state", jobs.STATES)
    task, error, tag = params.text(query, "task"), params.text(query, "error"), params.text(query, "tag")
    number, size = params.page(query)
    found = None
    if state or task or error or tag or query.get("all"):
        rows = managers.managers(client)
        places = [q["place"] for q in _queue_rows(client, rows)]
        places += [Place("worker", w["name"]) for m in rows for w in m["workers"]]
        found = jobs.search(client, places, state, task, error, tag)
        shown = found["matches"][(number - 1) * size: number * size]
        found["shown"] = jobs.summaries(client, [i for i, _w in shown], [w for _i, w in shown])
        found["pages"] = max(1, -(-len(found["matches"]) // size))
    return Page("jobs.html", {"state": state, "task": task, "error": error, "tag": tag, "found": found,
                              "states": jobs.STATES, "page": number, "size": size,
                              "window": jobs.SEARCH_WINDOW})


def job(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """One job's record, whatever of it is kept."""
    job_id = path["job_id"]
    if len(job_id) > params.TEXT_MAX:
        raise params.BadRequest(f"a job id is longer than {params.TEXT_MAX} characters")
    return Page("job.html", {"job_id": job_id, "job": jobs.record(client, job_id)})


def failed(client: Client, query: Mapping[str, str], path: Mapping[str, str]) -> Page:
    """The failed list grouped by error type, and a page of its jobs (``?type=`` for one group)."""
    kind = params.text(query, "type")
    number, size = params.page(query)
    report = failures.read(client)
    chosen = [j for j in report["jobs"] if not kind or j["type"] == kind]
    return Page("failed.html", {"report": report, "type": kind,
                                "jobs": chosen[(number - 1) * size: number * size], "matching": len(chosen),
                                "page": number, "size": size,
                                "pages": max(1, -(-len(chosen) // size))})


def _queue_rows(client: Client, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shared queue, the named queues some manager serves, and each manager's own queue."""
    places = [Place("shared")] + [named(q) for q in served_queues(m["info"] for m in rows)]
    places += [Place("manager", m["name"]) for m in rows]
    return depths(client, places)


def _quote(value: str) -> str:
    return quote(value, safe="")
