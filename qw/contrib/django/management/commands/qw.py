"""``manage.py qw <any qw-client command>``: qw-client on the project's Redis and namespace."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from qw.contrib.django.commands import connection_args, guarded


class Command(BaseCommand):
    help = "qw-client with the project's settings.QW: manage.py qw info, manage.py qw failed, ..."

    def run_from_argv(self, argv: list[str]) -> None:
        self.main(argv[2:])

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")

    def handle(self, *args: Any, **options: Any) -> None:
        self.main(list(args))

    def main(self, argv: list[str]) -> None:
        from qw.cli import client

        def run(conf: Any) -> int:
            client.main(connection_args(conf, argv) + argv)  # exits
            return 0

        guarded("qw", run)
