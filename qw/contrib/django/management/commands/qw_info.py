"""``manage.py qw_info [<filter>]``: the Redis server, the tasks and the workers, as three tables.

As django-gearman-jbox's ``gearman_server_info``: the server (address,
version, ping time), the tasks (name, workers that run it, running, queued)
and the workers (host, manager, worker, pid, tasks, current job); with a
filter, only tasks whose name contains it, and only workers that run one.
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.core.management.base import BaseCommand

from qw.cli.common import columns
from qw.cli.tasks_table import format_tasks
from qw.client import Client
from qw.connection import translated
from qw.contrib.django.commands import guarded, usage_error

PROG = "qw_info"


def server_table(client: Client) -> str:
    """ADDRESS / VERSION / PING."""
    with translated(client.config):
        begun = time.perf_counter()
        client.redis.ping()
        ping = (time.perf_counter() - begun) * 1000
        version = client.redis.info("server").get("redis_version", "?")
    return "\n".join(columns([["ADDRESS", "VERSION", "PING"],
                               [client.config.address(), str(version), f"{ping:.2f} ms"]]))


def workers_table(client: Client, name_filter: str) -> str:
    """HOST / MANAGER / WORKER / PID / TASKS / CURRENT JOB of the workers that run a task matching."""
    rows = [["HOST", "MANAGER", "WORKER", "PID", "TASKS", "CURRENT JOB"]]
    with translated(client.config):
        for manager in client.get_all_managers():
            info = client.get_manager_info(manager)
            if not info:
                continue  # no live lease
            tasks = sorted(t for t in info.get("tasks") or () if isinstance(t, str))
            if name_filter and not any(name_filter in t for t in tasks):
                continue
            found = re.search(r" on (\S+)", client.get_manager_holder(manager) or "")
            host = found.group(1) if found else "?"
            health = client.get_manager_health(manager)
            for worker in client.get_manager_workers(manager):
                pending = client.get_worker_pending_jobs(worker)
                seen = health.get(worker) or {}
                busy = seen.get("busy_for")
                current = pending[0] if pending and busy else "-"
                pid = str(seen.get("pid", "?"))
                rows.append([host, manager, worker, pid, ",".join(tasks) or "-", current])
    if len(rows) == 1:
        return "no workers" + (f" run a task matching {name_filter!r}" if name_filter else "")
    return "\n".join(columns(rows))


def info(client: Client, name_filter: str) -> str:
    """The three tables, a blank line apart."""
    with translated(client.config):
        tasks = client.get_tasks(name_filter=name_filter)
    return "\n\n".join([server_table(client), format_tasks(tasks, name_filter),
                         workers_table(client, name_filter)])


class Command(BaseCommand):
    help = __doc__.split("\n\n", 1)[1] if __doc__ else ""

    def run_from_argv(self, argv: list[str]) -> None:
        self.main(argv[2:])

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")

    def handle(self, *args: Any, **options: Any) -> None:
        self.main(list(args))

    def main(self, argv: list[str]) -> None:
        if any(a in ("-h", "--help") for a in argv):
            print(f"usage: manage.py qw_info [<filter>]\n\n{self.help}")
            return
        if len(argv) > 1 or (argv and argv[0].startswith("-")):
            usage_error(PROG, "usage: manage.py qw_info [<filter>]")

        def run(conf: Any) -> int:
            client = Client(url=conf.url, namespace=conf.namespace)
            try:
                print(info(client, argv[0] if argv else ""))
            finally:
                client.close()
            return 0

        guarded(PROG, run)
