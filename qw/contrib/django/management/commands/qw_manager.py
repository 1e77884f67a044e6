"""``manage.py qw_manager [-a <app>]... [-n <name>] [-q <queue>]... [any qw-manager option]``.

Runs a qw manager on the tasks of every installed app (or of the apps named
with ``-a``), on the project's Redis. ``-n`` names the manager (as
``--name``). Without ``-q`` the manager serves the shared queue and every
queue a task of the chosen apps is bound to; ``-q`` serves only that queue
(``all``: the shared one), which must be one a task of the chosen apps is
bound to. Every other
argument goes to ``qw-manager`` as it is (``--workers=4``,
``--max-attempts=5``, ``--config=qw.toml``...).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand

from qw.cli.common import run as run_cli
from qw.contrib.django.commands import connection_args, guarded
from qw.contrib.django.state import state
from qw.exceptions import ConfigError
from qw.tasks import tasks_in

PROG = "qw_manager"
SHORT = {"-a": "app", "--app": "app", "-n": "name", "-q": "queue"}


def split_args(argv: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Our ``-a``/``-n``/``-q`` apart from the arguments that go to qw-manager as they are."""
    ours: dict[str, list[str]] = {"app": [], "name": [], "queue": []}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, value = arg.partition("=")
        if flag in SHORT and (eq or i + 1 < len(argv)):
            if not eq:
                i += 1
                value = argv[i]
            ours[SHORT[flag]].append(value)
        elif arg[:2] in ("-a", "-n", "-q") and len(arg) > 2 and not arg.startswith("--"):
            ours[SHORT[arg[:2]]].append(arg[2:])  # -ashop
        elif flag in SHORT:
            raise ConfigError(f"{flag} needs a value")
        elif flag == "--queue":
            ours["queue"].append(value if eq else (argv[i + 1] if i + 1 < len(argv) else ""))
            i += 0 if eq else 1
        else:
            rest.append(arg)
        i += 1
    if len(ours["name"]) > 1:
        raise ConfigError("-n is given once")
    return ours, rest


def manager_argv(argv: list[str], conf: Any) -> list[str]:
    """The qw-manager command line for ``argv``: the chosen apps' task modules, names, queues, Redis."""
    ours, rest = split_args(argv)
    if ours["app"]:
        for label in ours["app"]:
            try:
                apps.get_app_config(label)
            except LookupError:
                raise ConfigError(f"unknown app {label!r}: not in INSTALLED_APPS (give its label)") from None
            if not state.modules.get(label):
                raise ConfigError(f"app {label!r} has no task module ({', '.join(conf.task_modules)})")
        chosen = ours["app"]
    else:
        chosen = [label for label, modules in state.modules.items() if modules]
    modules = [m for label in dict.fromkeys(chosen) for m in state.modules.get(label, [])]
    if not modules:
        raise ConfigError(f"no installed app has a task module ({', '.join(conf.task_modules)})")
    loaded = {name: task for module in modules for name, task in tasks_in(module).items()}
    modules = [m for m in modules if tasks_in(m)]  # qw-manager refuses a module with no task
    bound = {task.queue for task in loaded.values() if task.queue}
    for queue in ours["queue"]:
        if queue != "all" and queue not in bound:
            known = ", ".join(sorted(bound)) or "none"
            raise ConfigError(f"unknown queue {queue!r}: no task of {', '.join(chosen)} is bound to it "
                              f"(bound: {known})")
    if ours["queue"]:  # as the seed: only the tasks bound to those queues (by module: what a manager loads)
        wanted = set(ours["queue"])
        modules = [m for m in modules if any((t.queue or "all") in wanted for t in tasks_in(m).values())]
    args = [f"--tasks={','.join(modules)}"]
    args += [f"--name={name}" for name in ours["name"]]
    # No -q: every task of the chosen apps runs, so the shared queue and every queue they are bound to.
    served = ours["queue"] or ["all", *sorted(bound)]
    args += [f"--queue={queue}" for queue in served]
    return connection_args(conf, rest) + args + rest


class Command(BaseCommand):
    help = __doc__.split("\n\n", 1)[1] if __doc__ else ""

    def run_from_argv(self, argv: list[str]) -> None:
        self.main(argv[2:])

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")

    def handle(self, *args: Any, **options: Any) -> None:
        self.main(list(args))

    def main(self, argv: list[str]) -> None:
        from qw.cli import manager

        if "-h" in argv or "--help" in argv:
            def usage() -> int:
                print(__doc__.strip() + "\n\nqw-manager's options:\n")
                manager.main(["--help"])  # exits
                return 0

            run_cli(PROG, usage)  # a pipe closed early (| head) is no error

        def run(conf: Any) -> int:
            manager.main(manager_argv(argv, conf))  # exits
            return 0

        guarded(PROG, run)
