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
{connection}  --lease=<seconds>        A manager silent this long loses its name, and
                           other managers take its running jobs back [default: 10].
  --heartbeat=<seconds>    How often the lease is renewed (and retries promoted,
                           lapsed managers reaped); default: min(1, lease / 3).
  --graceful-timeout=<seconds>
                           On TERM, how long running jobs may take to finish
                           before they are killed and requeued [default: 25].
  --max-attempts=<n>       Runs a job gets (failures, deaths, time limits) before
                           it goes to the failed list, unless it says [default: 3].
  --backoff=<seconds>      First retry delay; doubles each attempt [default: 1].
  --job-timeout=<seconds>  Time limit of a job that sets none; default: none.
  --kill-grace=<seconds>   How long a job may ignore its time limit before its
                           worker is killed [default: 5].
  --max-jobs-per-worker=<n>
                           Replace a worker after this many jobs.
  --max-memory-per-worker=<mb>
                           Replace a worker, after its job, once it uses more
                           resident memory than this (MB).
  -h --help                Show this text.
  --version                Show the version.

Signals: TERM, QUIT and HUP stop gracefully: no new claims, running jobs
finish within --graceful-timeout. INT (Ctrl-C) stops at once: running jobs
are interrupted and requeued. A second signal during a graceful stop means now.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Optional

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
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    manager = Manager(
        args["<target>"],
        num_workers=optional(args, "--workers", integer, minimum=1),
        name=args["--name"],
        lease=number(args["--lease"], "--lease"),
        heartbeat=optional(args, "--heartbeat", number),
        graceful_timeout=number(args["--graceful-timeout"], "--graceful-timeout"),
        max_attempts=integer(args["--max-attempts"], "--max-attempts", minimum=1),
        backoff=number(args["--backoff"], "--backoff"),
        job_timeout=optional(args, "--job-timeout", number),
        kill_grace=number(args["--kill-grace"], "--kill-grace"),
        max_jobs_per_worker=optional(args, "--max-jobs-per-worker", integer, minimum=1),
        max_memory_per_worker=optional(args, "--max-memory-per-worker", number),
        **connection_kwargs(args),
    )
    return manager.run()


def optional(args: dict[str, Any], option: str, parse: Callable[..., Any], **kwargs: Any) -> Any:
    """Parse an option without a default, or None when it is absent."""
    value = args[option]
    return None if value is None else parse(value, option, **kwargs)


if __name__ == "__main__":
    main()
