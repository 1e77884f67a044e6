"""Tasks for the tests of delayed jobs and schedules (qw-manager time_app): each run leaves a file
holding when it started (this host's clock, which is the test Redis's too), its job id, attempt and,
for a run of a schedule, the schedule and due time that ``qw.current_job()`` gives."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import qw


def _note(directory: str, **what: Any) -> None:
    started = time.time()
    job = qw.current_job()
    name = f"{uuid.uuid4().hex}.run"
    scratch = Path(directory) / f".{name}"
    scratch.write_text(json.dumps({"started": started, "id": job.id if job else None,
                                   "attempt": job.attempt if job else 0, "schedule": job.schedule if job else None,
                                   "due": job.due if job else None, "pid": os.getpid(), **what}))
    scratch.rename(Path(directory) / name)  # whole, or not there


def runs(directory: Path) -> list[dict[str, Any]]:
    """Every run noted in ``directory``, in the order they started."""
    # pathlib matches dot files too: a scratch file being renamed is not a run yet.
    found = [json.loads(p.read_text()) for p in directory.glob("*.run") if not p.name.startswith(".")]
    return sorted(found, key=lambda r: r["started"])


@qw.task
def stamp(directory: str, tag: str = "") -> None:
    _note(directory, tag=tag)


@qw.task(max_attempts=3)
def flaky(directory: str, delay: float) -> None:
    """Fails its first attempt, asking for a retry ``delay`` seconds later."""
    _note(directory)
    job = qw.current_job()
    if job is not None and job.attempt == 1:
        raise qw.Retry(delay=delay, reason="not yet")


@qw.task
def slow(directory: str, seconds: float) -> None:
    _note(directory)
    time.sleep(seconds)


def target(job_id: str, data: dict[str, Any]) -> None:
    """A plain target (time_app:target): notes the run like the tasks do."""
    _note(data["dir"], tag=data.get("tag", ""))
