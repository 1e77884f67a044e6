"""Example tasks, and a one-command demo of them on the embedded Redis.

``python -m qw.example_tasks`` queues a few task jobs (``.delay()``,
``.map()``, ``send_with``, a class-based job) into an embedded Redis kept in
``./qw-data`` and runs a manager with two workers serving the ``emails``
queue first, then the shared one, until Ctrl-C. ``qw-manager
--embedded=qw-data --queue=emails --queue=all qw.example_tasks`` runs the
same manager on its own.
"""

from __future__ import annotations

import logging
import os
import sys

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


def main(directory: str = "qw-data") -> int:
    """Queue example task jobs on the embedded Redis in ``directory`` and run a manager on them."""
    from .client import Client
    from .manager import Manager
    from .tasks import set_default_client

    logging.basicConfig(level="INFO", format="%(asctime)s %(processName)s: %(message)s")
    set_default_client(Client(embedded=directory))
    greet.delay("Ada")
    greet.map([("Grace",), ("Linus", 2)])
    send_mail.delay("ken@example.com", "hi")
    send_mail.send_with(args=("barbara", "hi"), max_attempts=1)  # fails: see qw-client failed
    Report.delay("2026-11")
    log.info("queued 6 task jobs in the embedded Redis in %s/ (Ctrl-C stops)", directory)
    return Manager("qw.example_tasks", num_workers=2, name="demo-tasks", embedded=directory,
                   queues=["emails", "all"]).run()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
