"""qw-client's job record commands: job, result, cancel, jobs search, track, untrack, tracked."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from ..client import Client
from ..exceptions import JobCancelled, JobFailed, JobNotFound
from ..keeping import check_state
from ..records import JobInfo
from .common import EXIT_ERROR, EXIT_OK, number


def show_jobs(client: Client, ids: list[str], as_json: bool) -> int:
    """``qw-client job <id>...``: everything each record holds; exit 1 if any has none."""
    found, missing = [], []
    for job_id in ids:
        try:
            found.append(client.job(job_id).info())
        except JobNotFound:
            missing.append(job_id)
    if as_json:
        print(json.dumps([i.as_dict() for i in found], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(format_info(i) for i in found))
    for job_id in missing:
        print(f"{job_id}: no such job")
    return EXIT_ERROR if missing else EXIT_OK


def show_result(client: Client, job_id: str, wait: Optional[str]) -> int:
    """``qw-client result <id> [--wait=<s>]``: the result as JSON; exit 1 with the error if it failed."""
    seconds = number(wait, "--wait") if wait is not None else 0.0
    try:
        value = client.job(job_id).result(timeout=seconds)
    except JobNotFound:
        print("no such job")
        return EXIT_ERROR
    except JobFailed as exc:
        print(f"failed: {exc.error}")
        return EXIT_ERROR
    except JobCancelled:
        print("cancelled")
        return EXIT_ERROR
    except TimeoutError:
        state = client.job(job_id).state
        print(f"not finished after {seconds:g} s (state: {state})")
        return EXIT_ERROR
    print(json.dumps(value, ensure_ascii=False))
    return EXIT_OK


def cancel(client: Client, ids: list[str]) -> int:
    """``qw-client cancel <id>...``: one line per job; exit 1 if any could not be cancelled."""
    code = EXIT_OK
    for job_id in ids:
        try:
            if client.cancel(job_id):
                print(f"{job_id}: cancelled")
                continue
            print(f"{job_id}: not cancelled, it has settled ({client.job(job_id).state})")
        except JobNotFound:
            print(f"{job_id}: no such job")
        code = EXIT_ERROR
    return code


def search(client: Client, state: Optional[str], tag: Optional[str], task: Optional[str], limit: int,
           as_json: bool) -> int:
    """``qw-client jobs --state/--tag/--task``: matching jobs, most recent first."""
    if state is not None:
        check_state(state)
    found = client.find_jobs(state=state, tag=tag, task=task, limit=limit or 20)
    if as_json:
        print(json.dumps([i.as_dict() for i in found], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not found:
        print("no job matches")
    for info in found:
        when = _when(info.finished_at or info.started_at or info.queued_at)
        what = info.task or "(target)"
        print(f"{info.id}  {info.state:<9}  {when}  {what}{'  ' + info.error if info.error else ''}")
    return EXIT_OK


def reprioritise(client: Client, job_id: str, priority: int) -> int:
    """``qw-client priority <id> <n>``."""
    try:
        moved = client.set_priority(job_id, priority)
    except JobNotFound:
        print("no such job")
        return EXIT_ERROR
    if not moved:
        print(f"{job_id}: not queued ({client.job(job_id).state}): its priority no longer matters")
        return EXIT_ERROR
    print(f"{job_id}: priority {priority}")
    return EXIT_OK


def track(client: Client, ids: list[str], on: bool) -> int:
    """``qw-client track|untrack <id>...``."""
    outcome = client.track(*ids) if on else client.untrack(*ids)
    for job_id, ok in outcome.items():
        print(f"{job_id}: {'tracked' if on else 'untracked'}" if ok else f"{job_id}: no such job")
    return EXIT_OK if all(outcome.values()) else EXIT_ERROR


def show_tracked(client: Client, as_json: bool) -> int:
    ids = client.tracked()
    print(json.dumps(ids) if as_json else "\n".join(ids) or "no tracked job")
    return EXIT_OK


def format_info(info: JobInfo) -> str:
    """A record as the text ``qw-client job`` prints."""
    lines = [f"job {info.id}: {info.state}"]
    if info.task:
        call = ", ".join([*(json.dumps(a) for a in info.args or []),
                          *(f"{k}={json.dumps(v)}" for k, v in (info.kwargs or {}).items())])
        lines.append(f"  task      {info.task}({call})")
    if info.data:
        lines.append(f"  data      {json.dumps(info.data, ensure_ascii=False)}")
    if info.state == "done":
        lines.append(f"  result    {json.dumps(info.result, ensure_ascii=False)}")
    if info.error:
        lines.append(f"  error     {info.error}")
    lines.append(f"  attempts  {info.attempts}" + (f", last on {info.worker}" if info.worker else ""))
    if info.queue:
        lines.append(f"  queue     {info.queue}")
    for label, when in (("queued", info.queued_at), ("started", info.started_at), ("finished", info.finished_at)):
        if when:
            lines.append(f"  {label:<9} {_when(when)}")
    if info.tags:
        lines.append(f"  tags      {', '.join(info.tags)}")
    if info.tracked:
        lines.append("  tracked   yes: kept until untracked")
    elif info.expires_in is not None:
        lines.append(f"  expires   in {info.expires_in:g} s")
    if info.history:
        lines.append("  history")
        for event in info.history:
            extra = ", ".join(f"{k}: {v}" for k, v in event.items() if k not in ("event", "at"))
            lines.append(f"    {_when(event.get('at'))}  {event.get('event')}" + (f" ({extra})" if extra else ""))
    if info.traceback:
        lines.append("  traceback")
        lines.extend("    " + line for line in info.traceback.rstrip().splitlines())
    return "\n".join(lines)


def _when(timestamp: Any) -> str:
    if not isinstance(timestamp, (int, float)):
        return "?"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
