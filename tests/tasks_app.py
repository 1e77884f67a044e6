"""Tasks that managers in the tests run in real worker processes (qw-manager tasks_app).

Each run writes a file in the directory it is given, named after the job and
holding what the task saw, so a test counts runs across processes without
touching the Redis under test.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import qw


def _note(directory: str, what: dict[str, Any]) -> None:
    job = qw.current_job()
    name = f"{job.id if job else 'inline'}.done.{uuid.uuid4().hex}"
    scratch = Path(directory) / f".{name}"
    scratch.write_text(json.dumps({**what, "pid": os.getpid(), "attempt": job.attempt if job else 0}))
    scratch.rename(Path(directory) / name)  # whole, or not there: the test reads while workers write


@qw.task
def add(directory: str, a: int, b: int) -> int:
    _note(directory, {"task": "add", "sum": a + b})
    return a + b


@qw.task(name="app.mail.send", queue="emails", max_attempts=2)
def send_mail(directory: str, to: str, subject: str = "", **extra: Any) -> None:
    _note(directory, {"task": "app.mail.send", "to": to, "subject": subject, "extra": extra})


@qw.task(max_attempts=5)
def give_up(directory: str, reason: str) -> None:
    _note(directory, {"task": "give_up"})
    raise qw.Abort(reason)


@qw.task(max_attempts=3)
def later(directory: str, delay: float) -> None:
    _note(directory, {"task": "later"})
    job = qw.current_job()
    if job is not None and job.attempt == 1:
        raise qw.Retry(delay=delay, reason="not yet")


class Report(qw.Job):
    queue = "reports"

    def work(self, directory: str, month: str) -> None:
        _note(directory, {"task": "Report", "month": month})


def helper(directory: str, x: int) -> None:
    """Not a task: an import-path job (client.enqueue('tasks_app:helper')) where allowed."""
    _note(directory, {"task": "helper", "x": x})
