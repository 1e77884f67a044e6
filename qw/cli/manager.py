"""qw-manager: run worker processes on jobs queued in Redis.

Usage:
  qw-manager [--level=<log-level>] [--workers=<num-workers>] [--name=<name>] [--host=<host>] [--port=<port>] [--db=<db>] [--queue=<queue>]... [--allow=<pattern>]... [options] [<target>]
  qw-manager (-h | --help | --version)

<target> names the function each job is given to, as 'pkg.mod:fn' or
'pkg.mod.fn'; it is called as fn(job_id, job_data). Or it names a module of
tasks ('myapp.tasks'): a job that names a task runs it with its arguments.

Options:
  --config=<file>          Read options from this TOML file: each key is an
                           option's long name (workers = 4, graceful-timeout
                           = 30, target = "app.jobs:run"). Options given here
                           win over the file; HUP reads it again.
  --level=<log-level>      Log level: debug, info, warning or error; default: info.
  --log-format=<format>    text, or json (one object per line); default: text.
{options}  -h --help                Show this text.
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
from typing import Any, Optional

from ..exceptions import ConfigError
from ..manager import Manager
from ..options import OPTIONS, from_text, usage_lines
from ..version import __version__
from .common import CONNECTION_OPTIONS, connection_kwargs, parse, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, from PyPI
    import tomli as tomllib

__doc__ = __doc__.replace("{options}", usage_lines(CONNECTION_OPTIONS))
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# The usage text gives no defaults (docopt's would hide whether an option was
# given), so that one given in the configuration file can be told from one not
# given at all; these two are the CLI's own, and the manager's are in OPTIONS.
DEFAULTS = {"--level": "info", "--log-format": "text"}
NOT_IN_FILE = ("--config", "--help", "--version")
REPEATED = {option.cli for option in OPTIONS if option.repeat}  # docopt gives these as lists
LISTS = REPEATED | {"--tasks"}  # a file may give these as a TOML list of strings


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
        if value is None or value == [] or (option == "--namespace" and value == ""):
            value = from_file.get(option, DEFAULTS.get(option, value))
        args[option] = value
    if not (args["<target>"] or args["--tasks"] or args["--allow"]):
        raise ConfigError("no target: name one ('pkg.mod:fn') or a module of tasks, or set target in the "
                          "--config file")
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
        if isinstance(value, list) and option in LISTS and all(isinstance(v, str) for v in value):
            options[option] = value if option in REPEATED else ",".join(value)
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"configuration file {path}: {key} must be a string or a number, got {value!r}")
        options[option] = [str(value)] if option in REPEATED else str(value)
    return options


def manager_options(args: dict[str, Any]) -> dict[str, Any]:
    """Manager keyword arguments from merged options; raises :class:`ConfigError` on bad values."""
    level = args["--level"].lower()
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {args['--level']!r}")
    if args["--log-format"] not in FORMATS:
        raise ConfigError(f"--log-format must be one of {', '.join(FORMATS)}, got {args['--log-format']!r}")
    values = from_text(args)
    values["target"] = args["<target>"]
    return {**values, **connection_kwargs(args)}


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


def _options() -> set[str]:
    return set(re.findall(r"^\s+(?:-\w )?(--[a-z-]+)", __doc__, re.MULTILINE))


if __name__ == "__main__":
    main()
