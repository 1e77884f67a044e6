"""``qw-client stats``, ``info`` and ``top``: reports built from what managers publish (``info``'s table
of tasks: :mod:`qw.cli.tasks_table`)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional

from .. import stats
from ..client import Client
from .common import EXIT_OK, columns
from .schedules_table import format_schedules, moment
from .tasks_table import format_tasks

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen


def info_report(client: Client, manager: Optional[str]) -> dict[str, Any]:
    """Managers, their workers and what each runs, queue depths, jobs/s: one snapshot."""
    names = [manager] if manager else client.get_all_managers()
    now = time.time()
    managers, workers = [], []
    for name in names:
        info = client.get_manager_info(name)
        holder = client.get_manager_holder(name)
        minute = stats.recent(client.redis, client.keys, name) if info else None
        managers.append({
            "name": name, "alive": holder is not None, "pid": info.get("pid"), "host": info.get("host"),
            "version": info.get("version"), "target": info.get("target"), "workers": info.get("workers"),
            "running": info.get("running"), "leaving": info.get("leaving"), "paused": bool(info.get("paused")),
            "up_for": round(now - info["started"], 1) if info.get("started") else None,
            "queued_for_it": client.redis.llen(client.keys.manager_jobs(name)),
            "jobs_per_s": minute["jobs_per_s"] if minute else None,
        })
        health = client.get_manager_health(name)
        for worker in client.get_manager_workers(name):
            seen = health.get(worker, {})
            jobs = client.get_worker_pending_jobs(worker)
            busy_for = seen.get("busy_for")
            workers.append({
                "manager": name, "worker": worker, "pid": seen.get("pid"),
                "state": "busy" if busy_for is not None else ("paused" if info.get("paused") else "idle"),
                # The job it runs sits at the right end of its list.
                "job": jobs[-1] if busy_for is not None and jobs else None,
                "busy_for": busy_for, "waiting_in_its_list": max(0, len(jobs) - (busy_for is not None)),
                "since_last_claim": seen.get("since_last_claim"),
            })
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.llen(client.keys.all_jobs)
        pipe.zcard(client.keys.all_scheduled)
        pipe.llen(client.keys.all_failed)
        pipe.zrange(client.keys.all_scheduled, 0, 0, withscores=True)
        shared, scheduled, failed, soonest = pipe.execute()
    queues = {"all:jobs": shared, "scheduled": scheduled, "failed": failed,
              "next_due": soonest[0][1] if soonest else None,
              "in_progress": sum(1 for w in workers if w["job"])}
    overall = stats.recent(client.redis, client.keys)
    return {"at": now, "managers": managers, "workers": workers, "queues": queues,
            "jobs_per_s": overall["jobs_per_s"], "tasks": client.get_tasks(manager),
            "schedules": client.recurring()}


def format_info(report: dict[str, Any]) -> str:
    lines = []
    rows = [["MANAGER", "PID", "HOST", "WORKERS", "STATE", "QUEUED", "JOBS/S", "UP", "TARGET"]]
    for m in report["managers"]:
        state = "gone" if not m["alive"] else ("paused" if m["paused"] else "running")
        count = "-" if m["workers"] is None else str(m["running"])
        if m.get("leaving"):
            count += f" (+{m['leaving']} leaving)"
        rows.append([m["name"], _dash(m["pid"]), _dash(m["host"]), count, state, str(m["queued_for_it"]),
                     _dash(m["jobs_per_s"]), _duration(m["up_for"]), _dash(m["target"])])
    lines += columns(rows) if len(rows) > 1 else ["no managers registered"]
    lines.append("")
    rows = [["WORKER", "PID", "STATE", "JOB", "FOR", "LAST CLAIM", "WAITING"]]
    for w in report["workers"]:
        rows.append([w["worker"], _dash(w["pid"]), w["state"], _dash(w["job"]), _duration(w["busy_for"]),
                     _duration(w["since_last_claim"]) + " ago" if w["since_last_claim"] is not None else "-",
                     str(w["waiting_in_its_list"])])
    lines += columns(rows) if len(rows) > 1 else ["no workers registered"]
    if report["tasks"]["tasks"]:  # a deployment of plain jobs only sees no change
        lines += ["", format_tasks(report["tasks"])]
    if report.get("schedules"):
        lines += ["", format_schedules(report["schedules"])]
    q = report["queues"]
    lines.append("")
    lines.append(f"queued in all:jobs: {q['all:jobs']}   in progress: {q['in_progress']}   "
                 f"scheduled: {q['scheduled']}{_next(q.get('next_due'))}   failed: {q['failed']}   "
                 "jobs/s (last minute): "
                 f"{report['jobs_per_s']:g}")
    return "\n".join(lines)


def format_stats(report: dict[str, Any]) -> str:
    lines = [f"{report['scope']}: history of {report['history_hours']:g} h by minute, "
             f"{report['history_days']} day(s) by day"]
    header = ["WINDOW", "QUEUED", "PROCESSED", "FAILED", "RETRIED", "REQUEUED", "JOBS/S", "FAIL%",
              "WAIT p50/p90/p99", "RUN p50/p90/p99"]
    rows = [header]
    for label, row in report["windows"].items():
        rows.append(_stats_row(f"last {label}", row))
    for row in report["days"]:
        rows.append(_stats_row(row["day"], row))
    return "\n".join(lines + columns(rows))


def top(client: Client, manager: Optional[str], interval: float, rounds: Optional[int] = None) -> int:
    """Redraw the info table every ``interval`` seconds until Ctrl-C."""
    done = 0
    try:
        while rounds is None or done < rounds:
            text = format_info(info_report(client, manager))
            stamp = time.strftime("%H:%M:%S")
            sys.stdout.write(f"{CLEAR}qw top  {stamp}  (Ctrl-C to leave)\n\n{text}\n")
            sys.stdout.flush()
            done += 1
            time.sleep(interval)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
    return EXIT_OK


def _next(due: Optional[float]) -> str:
    return "" if due is None else f" (next due {moment(due)})"


def dumps(report: Any) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def _stats_row(label: str, row: dict[str, Any]) -> list[str]:
    rate = row["failure_rate"]
    # queued and requeued are None where they are not kept (per task, per queue): "-", not 0.
    return [label, _dash(row["queued"]), str(row["processed"]), str(row["failed"]), str(row["retried"]),
            _dash(row["requeued"]), f"{row['jobs_per_s']:g}", "-" if rate is None else f"{rate * 100:.1f}",
            _percentiles(row["wait"]), _percentiles(row["run"])]


def _percentiles(p: dict[str, Optional[float]]) -> str:
    if p["p50"] is None:
        return "-"
    return "/".join(_duration(p[k]) for k in ("p50", "p90", "p99"))


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)
