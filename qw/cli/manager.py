"""qw-manager: run worker processes on jobs queued in Redis.

Usage:
  qw-manager [--level=<log-level>] [--workers=<num-workers>] [--name=<name>] [--host=<host>] [--port=<port>] [--db=<db>] [options] [<target>]
  qw-manager (-h | --help | --version)

<target> names the function each job is given to, as 'pkg.mod:fn' or
'pkg.mod.fn'; it is called as fn(job_id, job_data).

Options:
  --config=<file>          Read options from this TOML file: each key is an
                           option's long name (workers = 4, graceful-timeout
                           = 30, target = "app.jobs:run"). Options given here
                           win over the file; HUP reads it again.
  --level=<log-level>      Log level: debug, info, warning or error; default: info.
  --log-format=<format>    text, or json (one object per line); default: text.
  --workers=<num-workers>  Number of worker processes; default: the CPU count.
  --name=<name>            Manager name, unique among live managers; no ':' or
                           whitespace. Default: the host name.
{connection}  --lease=<seconds>        A manager silent this long loses its name, and
                           other managers take its running jobs back; default: 10.
  --heartbeat=<seconds>    How often the lease is renewed (and retries promoted,
                           lapsed managers reaped); default: min(1, lease / 3).
  --graceful-timeout=<seconds>
                           On TERM, how long running jobs may take to finish
                           before they are killed and requeued; default: 25.
  --max-attempts=<n>       Runs a job gets (failures, deaths, time limits) before
                           it goes to the failed list, unless it says; default: 3.
  --backoff=<seconds>      First retry delay; doubles each attempt; default: 1.
  --job-timeout=<seconds>  Time limit of a job that sets none; default: none.
  --kill-grace=<seconds>   How long a job may ignore its time limit before its
                           worker is killed; default: 5.
  --max-jobs-per-worker=<n>
                           Replace a worker after this many jobs.
  --max-memory-per-worker=<mb>
                           Replace a worker, after its job, once it uses more
                           resident memory than this (MB).
  --prefetch=<n>           Jobs a worker claims per round trip; above 1 speeds
                           up tiny jobs, and a worker's death then takes up to
                           n jobs with it (run again, an attempt used); default: 1.
  --history-hours=<h>      Hours of per-minute statistics kept; default: 6.
  --history-days=<d>       Days of per-day statistics kept; default: 7.
  --metrics-port=<port>    Serve Prometheus metrics on this port (0: any free one).
  --metrics-host=<host>    Address the metrics are served on; default: 127.0.0.1.
  -h --help                Show this text.
  --version                Show the version.

Signals: TERM and QUIT stop gracefully: no new claims, running jobs finish
within --graceful-timeout. INT (Ctrl-C) stops at once: running jobs are
interrupted and requeued. A second signal during a graceful stop means now.
TTIN adds a worker; TTOU retires one after its job. HUP reloads: it reads
the configuration file again, imports the target afresh, and starts new
workers while the old ones finish their job and leave. USR2 stops
gracefully, then executes qw-manager again (new code) under the same name,
handing the name over.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from .. import __version__
from ..exceptions import ConfigError
from ..manager import Manager
from .common import CONNECTION_OPTIONS, connection_kwargs, integer, number, parse, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, from PyPI
    import tomli as tomllib

__doc__ = __doc__.replace("{connection}", CONNECTION_OPTIONS)
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# Options without a default in the usage text, so that one given in the
# configuration file can be told from one not given at all.
DEFAULTS = {"--level": "info", "--log-format": "text", "--lease": "10", "--graceful-timeout": "25",
            "--max-attempts": "3", "--backoff": "1", "--kill-grace": "5", "--history-hours": "6",
            "--history-days": "7", "--metrics-host": "127.0.0.1", "--namespace": "",
            "--prefetch": "1"}
NOT_IN_FILE = ("--config", "--help", "--version")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of ``qw-manager``."""
    run("qw-manager", lambda: _main(argv))


def _main(argv: Optional[list[str]]) -> int:
    given = parse(__doc__, argv, f"qw-manager {__version__}")
    args = merged(given)
    options = manager_options(args)
    configure_logging(args)

    def options_source() -> dict[str, Any]:  # a reload reads the file again
        fresh = merged(given)
        logging.getLogger().setLevel(fresh["--level"].upper())
        return manager_options(fresh)

    manager = Manager(**options, options_source=options_source)
    return manager.run()


def merged(given: dict[str, Any]) -> dict[str, Any]:
    """Command-line options over the configuration file's over the defaults."""
    from_file = read_config(given["--config"]) if given["--config"] else {}
    args = {}
    for option, value in given.items():
        if value is None or (option == "--namespace" and value == ""):
            value = from_file.get(option, DEFAULTS.get(option))
        args[option] = value
    if not args["<target>"]:
        raise ConfigError("no target: name one ('pkg.mod:fn'), or set target in the --config file")
    return args


def read_config(path: str) -> dict[str, Any]:
    """The options in a TOML file, keyed like docopt's (``--workers``, ``<target>``), as strings."""
    try:
        with Path(path).open("rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    known = {option for option in _options() if option not in NOT_IN_FILE}
    options: dict[str, Any] = {}
    for key, value in table.items():
        option = "<target>" if key == "target" else "--" + key.replace("_", "-")
        if option not in known and option != "<target>":
            raise ConfigError(f"configuration file {path}: unknown option {key!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"configuration file {path}: {key} must be a string or a number, got {value!r}")
        options[option] = str(value)
    return options


def manager_options(args: dict[str, Any]) -> dict[str, Any]:
    """Manager keyword arguments from merged options; raises :class:`ConfigError` on bad values."""
    level = args["--level"].lower()
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {args['--level']!r}")
    if args["--log-format"] not in FORMATS:
        raise ConfigError(f"--log-format must be one of {', '.join(FORMATS)}, got {args['--log-format']!r}")
    return dict(
        target=args["<target>"],
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
        history=(number(args["--history-hours"], "--history-hours"),
                 integer(args["--history-days"], "--history-days", minimum=1)),
        metrics_port=optional(args, "--metrics-port", integer, minimum=0),
        metrics_host=args["--metrics-host"],
        prefetch=integer(args["--prefetch"], "--prefetch", minimum=1),
        **connection_kwargs(args),
    )


def configure_logging(args: dict[str, Any]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if args["--log-format"] == "json":
        from pythonjsonlogger.json import JsonFormatter  # only needed for JSON

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                                           rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(args["--level"].upper())


def optional(args: dict[str, Any], option: str, parse: Callable[..., Any], **kwargs: Any) -> Any:
    """Parse an option without a default, or None when it is absent."""
    value = args[option]
    return None if value is None else parse(value, option, **kwargs)


def _options() -> set[str]:
    return set(re.findall(r"^\s+(?:-\w )?(--[a-z-]+)", __doc__, re.MULTILINE))


if __name__ == "__main__":
    main()
