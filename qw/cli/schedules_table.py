"""Recurring schedules as text: ``qw-client recur list``, and the table ``info`` and ``jobs`` show."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from .common import columns


def format_schedules(rows: list[dict[str, Any]]) -> str:
    """One line per schedule: when, what, next and last fire, the last run's outcome, counts."""
    if not rows:
        return "no recurring schedules"
    table = [["SCHEDULE", "WHEN", "RUNS", "NEXT", "LAST", "LAST RUN", "FIRED", "OVERLAPS SKIPPED", "MISSED"]]
    for r in rows:
        what = f"task {r['task']}" if r["task"] else "data"
        if r["queue"] or r["manager"]:
            what += f" -> {r['queue'] or r['manager']}"
        table.append([r["name"], r["when"] + (f", catchup {r['catchup']}" if r["catchup"] != "skip" else ""),
                      what, "paused" if r["paused"] else moment(r["next"]), moment(r["last"]),
                      r["last_outcome"] or "-", str(r["fired"]), str(r["skipped_overlaps"]), str(r["missed"])])
    return "\n".join(columns(table))


def moment(timestamp: Optional[float]) -> str:
    """A unix time as ``2026-12-24 08:00:00.200 UTC`` (milliseconds only when there are any)."""
    if timestamp is None:
        return "-"
    at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    text = at.strftime("%Y-%m-%d %H:%M:%S")
    if at.microsecond // 1000:
        text += f".{at.microsecond // 1000:03d}"
    return text + " UTC"
