"""A one-command demo of tasks on the embedded Redis: ``python -m qw.tasks_demo [<dir>]``.

It queues a few task jobs of :mod:`qw.example_tasks` (``.delay()``,
``.map()``, ``send_with``, a class-based job) into an embedded Redis kept in
``./qw-data`` and runs a manager with two workers serving the ``emails``
queue first, then the shared one, until Ctrl-C. A thread waits for two of
the jobs (``h.result()``, blocked in Redis) and logs their outcome and
history. The tasks live in a module
of their own: declared in the module run as ``__main__`` they would be
named ``__main__.greet``, which no worker could find.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from .example_tasks import Report, greet, send_mail

log = logging.getLogger("qw.examples")


def main(directory: str = "qw-data") -> int:
    """Queue example task jobs on the embedded Redis in ``directory`` and run a manager on them."""
    from .client import Client
    from .manager import Manager
    from .tasks import set_default_client  # here: the package front imports nothing of the demo

    logging.basicConfig(level="INFO", format="%(asctime)s %(processName)s: %(message)s")
    set_default_client(Client(embedded=directory))
    ada = greet.delay("Ada")
    greet.map([("Grace",), ("Linus", 2)])
    send_mail.delay("ken@example.com", "hi")
    barbara = send_mail.send_with(args=("barbara", "hi"), max_attempts=1)  # fails: see qw-client failed
    Report.delay("2026-11")
    log.info("queued 6 task jobs in the embedded Redis in %s/ (Ctrl-C stops)", directory)
    threading.Thread(target=_show_outcomes, args=(ada, barbara), daemon=True).start()
    return Manager("qw.example_tasks", num_workers=2, name="demo-tasks", embedded=directory,
                   queues=["emails", "all"]).run()


def _show_outcomes(*handles: Any) -> None:
    from .exceptions import JobFailed

    for handle in handles:
        try:
            outcome = f"returned {handle.result(timeout=60)!r}"
        except JobFailed as failed:
            outcome = f"failed for good after {failed.attempts} attempt(s): {failed}"
        except Exception as exc:  # noqa: BLE001 - a demo says what happened and goes on
            outcome = f"unknown ({exc})"
        events = " -> ".join(event["event"] for event in handle.info().history)
        log.info("job %s %s; its history: %s (qw-client job %s)", handle.id, outcome, events, handle.id)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
