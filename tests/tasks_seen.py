"""Tasks that tests/test_task_stats.py runs in real worker processes (qw-manager tasks_seen).

They take no directory: the tests read what a user reads (``qw-client tasks``,
``stats``, the Prometheus endpoint), not files the tasks write.
"""

from __future__ import annotations

import time

import qw


@qw.task(name="seen.ok")
def ok() -> None:
    """Return at once."""


@qw.task(name="seen.nap")
def nap(seconds: float) -> None:
    """Keep a worker busy (the tests stop their managers at once, which interrupts it)."""
    time.sleep(seconds)


@qw.task(name="seen.boom", queue="emails")
def boom() -> None:
    """Fail every time: retried while attempts remain, then failed for good."""
    raise ValueError("boom")


@qw.task(name="seen.mail", queue="emails")
def mail(to: str) -> None:
    """Succeed, from the named queue ``emails``."""
