"""Example targets, and a one-command demo on the embedded Redis.

``python -m qw.examples`` queues a few example jobs into an embedded Redis
kept in ``./qw-data`` and runs a manager with two workers on them until
Ctrl-C. ``qw-manager --embedded=qw-data qw.examples:greet`` runs the same
manager on its own.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger("qw.examples")


def greet(job_id: str, job_data: dict[str, Any]) -> None:
    """Log a greeting for ``job_data["name"]``; sleep ``job_data["seconds"]`` if given."""
    time.sleep(float(job_data.get("seconds", 0)))
    log.info("job %s: hello, %s (worker pid %d)", job_id, job_data.get("name", "world"), os.getpid())


def fail(job_id: str, job_data: dict[str, Any]) -> None:
    """Always raise: shows where failed jobs go (``qw-client jobs``)."""
    raise RuntimeError(job_data.get("reason", "this job fails on purpose"))


def main(directory: str = "qw-data") -> int:
    """Queue example jobs on the embedded Redis in ``directory`` and run a manager on them."""
    from .client import Client
    from .manager import Manager

    logging.basicConfig(level="INFO", format="%(asctime)s %(processName)s: %(message)s")
    client = Client(embedded=directory)
    names = ["Ada", "Grace", "Linus", "Barbara", "Ken"]
    ids = client.queue_jobs({"name": name, "seconds": 0.2} for name in names)
    log.info("queued %d jobs in the embedded Redis in %s/ (Ctrl-C stops)", len(ids), directory)
    return Manager("qw.examples:greet", num_workers=2, name="demo", embedded=directory).run()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
