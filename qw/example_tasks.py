"""Example tasks: ``python -m qw.tasks_demo`` queues and runs them on the embedded Redis.

``qw-manager --embedded=qw-data --queue=emails --queue=all qw.example_tasks``
runs a manager on them.
"""

from __future__ import annotations

import logging
import os

from .exceptions import Abort
from .tasks import Job, task

log = logging.getLogger("qw.examples")


@task
def greet(name: str, times: int = 1) -> str:
    """Log a greeting; the return value is what a result would hold."""
    for _ in range(times):
        log.info("hello, %s (worker pid %d)", name, os.getpid())
    return f"hello, {name}"


@task(name="mail.send", queue="emails", max_attempts=5)
def send_mail(to: str, subject: str) -> None:
    """A task on a named queue; an address without '@' fails for good, without retries."""
    if "@" not in to:
        raise Abort(f"not an address: {to!r}")
    log.info("mail to %s: %s", to, subject)


class Report(Job):
    """A class-based task, named after the class: ``qw.example_tasks.Report``."""

    def work(self, month: str) -> None:
        log.info("report for %s", month)
