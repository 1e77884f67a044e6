"""``qw-client tasks``: the table of tasks (:func:`qw.census.task_table`) as text; ``info`` shows it too."""

from __future__ import annotations

from typing import Any

from .common import columns


def format_tasks(table: dict[str, Any], name_filter: str = "") -> str:
    """The TASK / WORKERS / RUNNING / QUEUED table, and what the counts leave out.

    A QUEUED count reads ``10000+`` when some queue held more than the ids
    read per queue: the jobs past that point were not looked at.
    """
    more = "+" if table["queued_capped"] else ""
    rows = [["TASK", "WORKERS", "RUNNING", "QUEUED"]]
    for row in table["tasks"]:
        rows.append([row["task"], str(row["workers"]), str(row["running"]), f"{row['queued']}{more}"])
    if len(rows) > 1:
        lines = columns(rows)
    else:
        lines = [f"no task matches {name_filter!r}" if name_filter else "no tasks"]
    plain = table["plain"]
    if not name_filter and (plain["running"] or plain["queued"]):
        lines.append(f"jobs without a task: {plain['running']} running, {plain['queued']}{more} queued")
    if more:
        deep = ", ".join(f"{q['queue']} ({q['depth']})" for q in table["queues"] if q["depth"] > q["read"])
        lines.append(f"queued: counted among the next {table['cap']} jobs of each queue; "
                     f"longer: {deep}")
    return "\n".join(lines)
