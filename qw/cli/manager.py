"""qw-manager: run worker processes on jobs queued in Redis.

Usage:
  qw-manager [--level=<log-level>] [--workers=<num-workers>] [--name=<name>] [--host=<host>] [--port=<port>] [--db=<db>] [options] <target>
  qw-manager (-h | --help | --version)

<target> names the function each job is given to, as 'pkg.mod:fn' or
'pkg.mod.fn'; it is called as fn(job_id, job_data).

Options:
  --level=<log-level>      Log level: debug, info, warning or error [default: info].
  --workers=<num-workers>  Number of worker processes; default: the CPU count.
  --name=<name>            Manager name, unique among live managers; no ':' or
                           whitespace. Default: the host name.
{connection}  --lease=<seconds>        A manager silent this long loses its name [default: 10].
  --graceful-timeout=<seconds>
                           On stop, how long running jobs may take to finish
                           before they are killed and requeued [default: 30].
  -h --help                Show this text.
  --version                Show the version.

Signals: TERM, INT (Ctrl-C), QUIT and HUP stop gracefully; a second one stops
at once, requeuing running jobs.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

from .. import __version__
from ..exceptions import ConfigError
from ..manager import Manager
from .common import CONNECTION_OPTIONS, connection_kwargs, integer, number, parse, run

__doc__ = __doc__.replace("{connection}", CONNECTION_OPTIONS)
LEVELS = ("debug", "info", "warning", "error")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of ``qw-manager``."""
    run("qw-manager", lambda: _main(argv))


def _main(argv: Optional[list[str]]) -> int:
    args = parse(__doc__, argv, f"qw-manager {__version__}")
    level = args["--level"].lower()
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {args['--level']!r}")
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s: %(message)s",
        stream=sys.stderr,
    )
    workers = args["--workers"]
    manager = Manager(
        args["<target>"],
        num_workers=integer(workers, "--workers", minimum=1) if workers is not None else None,
        name=args["--name"],
        lease=number(args["--lease"], "--lease"),
        graceful_timeout=number(args["--graceful-timeout"], "--graceful-timeout"),
        **connection_kwargs(args),
    )
    return manager.run()


if __name__ == "__main__":
    main()
