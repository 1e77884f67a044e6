"""Tasks that tests/test_tasks.py loads as a task module, as a manager would."""

from __future__ import annotations

from os.path import join  # noqa: F401 - on purpose: an allowed module's import must not make os.path allowed

import qw

CONSTANT = 42


@qw.task
def add(a, b):
    """Add two numbers."""
    return a + b


@qw.task(name="mail.send", queue="emails", max_attempts=5, timeout=30)
def send_mail(to, subject, body=""):
    return {"to": to, "subject": subject, "body": body}


def plain(x):
    """Not a task: reachable only as the import path 'tasks_sample:plain', when allowed."""
    return x * 2


def _private(x):
    return x


class Report(qw.Job):
    queue = "reports"

    def __init__(self) -> None:
        self.runs = 0

    def work(self, month, *, pages=1):
        self.runs += 1  # a fresh instance per run: always 1
        return {"month": month, "pages": pages, "runs": self.runs}
