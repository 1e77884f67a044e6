"""What the management commands share: the project's connection options, and one-line errors.

``qw_manager`` and ``qw`` hand their arguments to ``qw-manager``'s and
``qw-client``'s own docopt parsing (:mod:`qw.cli.manager`,
:mod:`qw.cli.client`), with ``--url`` and ``--namespace`` from
``settings.QW`` put first, unless the command line names a Redis itself.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, Sequence

from ...cli.common import run
from ...exceptions import ConfigError
from .settings import QwSettings
from .state import ensure_ready

WHERE = ("--url", "--host", "--port", "--db", "--embedded")


def connection_args(conf: QwSettings, argv: Sequence[str]) -> list[str]:
    """``--url`` and ``--namespace`` from the settings, for what ``argv`` does not give itself."""
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    args = []
    if conf.url and not given & set(WHERE):
        args.append(f"--url={conf.url}")
    if conf.namespace and "--namespace" not in given:
        args.append(f"--namespace={conf.namespace}")
    return args


def guarded(prog: str, main: Callable[[QwSettings], int]) -> NoReturn:
    """Run ``main(settings)``: a bad setting, import or argument is one line on stderr and exit 1."""
    run(prog, lambda: main(ensure_ready()))


def usage_error(prog: str, message: str) -> NoReturn:
    """One line, exit 1."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(1)


__all__ = ["ConfigError", "connection_args", "guarded", "usage_error"]
