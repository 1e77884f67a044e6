"""Every option of a manager, declared once: what it is, how it is checked, spelled and reloaded.

``OPTIONS`` is the one table. :class:`~qw.Manager` checks its keyword
arguments against it (:class:`Settings`), a reload changes the options
marked ``reload``, and ``qw-manager`` derives from it the option lines of its
usage text, the keys its TOML configuration file accepts and the parsing of
their values. A test checks that ``Manager``'s signature lists the same
options. Adding an option is one row here (plus its use).
"""

from __future__ import annotations

import os
import socket
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .dispatch import AllowList
from .durable import DEFAULT_WAIT_TIMEOUT_MS
from .exceptions import ConfigError
from .keeping import DEFAULT_MAX_RESULT_SIZE, DEFAULT_RESULT_TTL
from .keys import validate_manager_name
from .loading import MODULE, classify
from .process import Limits
from .queues import QueueSpec, parse_queues
from .retry import RetryPolicy
from .stats import DEFAULT_HISTORY

HELP_COLUMN = 27  # where the usage text's descriptions start
HELP_WIDTH = 82


def integer(text: str, option: str, minimum: int) -> int:
    """Parse an integer option, or raise a one-line :class:`ConfigError`."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{option} must be at least {minimum}, got {value}")
    return value


def number(text: str, option: str) -> float:
    """Parse a non-negative number of seconds."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a number of seconds, got {text!r}") from None
    if value < 0:
        raise ConfigError(f"{option} must not be negative, got {text!r}")
    return value


def whole(minimum: int) -> Callable[[str, str], int]:
    """A parser of integers of at least ``minimum``."""
    return lambda text, option: integer(text, option, minimum)


def text(value: str, option: str) -> str:
    return value


def _positive(option: str, value: Any) -> Any:
    if value is not None and value <= 0:
        raise ConfigError(f"{option} must be positive, got {value}")
    return value


def _not_negative(option: str, value: Any) -> Any:
    if value < 0:
        raise ConfigError("graceful_timeout and kill_grace must not be negative")
    return value


def _worker_count(option: str, value: Any) -> int:
    if value is None:
        return os.cpu_count() or 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"number of workers must be a positive integer, got {value!r}") from None
    if count < 1 or str(count) != str(value).strip():
        raise ConfigError(f"number of workers must be a positive integer, got {value!r}")
    return count


def _prefetch(option: str, value: Any) -> Optional[int]:
    if value is None:
        return None  # adapted to the jobs (qw.batching)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"prefetch must be a whole number of at least 1, or auto, got {value!r}")
    return value


def _prefetch_text(text: str, option: str) -> Optional[int]:
    return None if text.strip().lower() == "auto" else integer(text, option, 1)


def _lease(option: str, value: Any) -> float:
    if value <= 0:
        raise ConfigError("lease must be positive")
    return value


def _name(option: str, value: Optional[str]) -> str:
    return validate_manager_name(value or socket.gethostname())


def _history(option: str, value: tuple[float, int]) -> tuple[float, int]:
    if value[0] <= 0 or value[1] < 1:
        raise ConfigError(f"history must keep some hours of minutes and at least a day, got {value}")
    return value


def _keep(option: str, value: Any) -> Any:
    return value


def _names(option: str, value: Any) -> Optional[tuple[str, ...]]:
    """None, or a list of names (a comma-separated string is split)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    return names or None


def _queues(option: str, value: Any) -> Optional[tuple[QueueSpec, ...]]:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    # Already checked once (a reload passes the current value back): "name:weight" again.
    specs = [f"{i[0]}:{i[1]}" if isinstance(i, tuple) and i[1] is not None else
             i[0] if isinstance(i, tuple) else str(i) for i in items]
    return tuple(parse_queues(specs)) or None


def _allow(option: str, value: Any) -> tuple[str, ...]:
    patterns = _names(option, value) or ()
    AllowList(patterns)  # refuses a pattern that is not one, with a one-line reason
    return patterns


def listed(text: str, option: str) -> list[str]:
    """A repeatable flag's texts, or a comma-separated one, as a list."""
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Option:
    """One option: its ``Manager`` keyword, default, check, CLI flag and help line, and whether
    a reload may change it.

    ``check`` receives the value given (or the default) and returns the
    value the manager uses, or raises :class:`ConfigError`. ``flag`` is the
    ``qw-manager`` spelling (``--graceful-timeout=<seconds>``), also the
    configuration file's key without its dashes; ``parse`` turns the text
    given there into a value. ``keyword`` is the ``Manager`` argument the
    value goes to when it is not the option's own name (``history`` takes
    two). ``group`` "connection" options are rendered by the usage block
    both CLIs share.
    """

    name: str
    default: Any
    help: str = ""
    flag: str = ""
    parse: Callable[[str, str], Any] = text
    check: Callable[[str, Any], Any] = _keep
    reload: bool = False
    keyword: str = ""
    group: str = ""
    repeat: bool = False  # the flag may be given many times (docopt gives a list)

    @property
    def argument(self) -> str:
        """The ``Manager`` keyword this option is given as."""
        return self.keyword or self.name

    @property
    def cli(self) -> str:
        """``--graceful-timeout``: the flag without its metavariable; "" when there is none."""
        return self.flag.split("=", 1)[0]

    def usage(self) -> str:
        """The option's lines in the usage text."""
        lead = f"  {self.flag}"
        indent = " " * HELP_COLUMN
        if len(lead) > HELP_COLUMN - 2:  # docopt needs two spaces: the help goes on the next line
            return lead + "\n" + textwrap.fill(self.help, HELP_WIDTH, initial_indent=indent,
                                                subsequent_indent=indent, break_on_hyphens=False)
        return textwrap.fill(self.help, HELP_WIDTH, initial_indent=lead.ljust(HELP_COLUMN),
                             subsequent_indent=indent, break_on_hyphens=False)


OPTIONS: tuple[Option, ...] = (
    Option("target", None, reload=True, check=_keep),  # the usage's <target>; resolved by the manager
    Option("tasks", None, "Task modules whose tasks the workers run, comma-separated (a module given "
           "as <target> is one too).", "--tasks=<modules>", listed, _names, reload=True),
    Option("queues", None, "A named queue to take jobs from, in the order given (weighted, Sidekiq-"
           "style, with name:weight on each); 'all' is the shared queue. Default: the shared queue "
           "only. Repeat for more.", "--queue=<queue>", check=_queues, reload=True, repeat=True),
    Option("allow", (), "Also run import-path jobs (client.enqueue('pkg.mod:fn')) from modules "
           "matching this pattern ('myapp.*'); default: none. Repeat for more.", "--allow=<pattern>",
           check=_allow, reload=True, repeat=True),
    Option("num_workers", None, "Number of worker processes; default: the CPU count.",
           "--workers=<num-workers>", whole(1), _worker_count, reload=True),
    Option("name", None, "Manager name, unique among live managers; no ':' or whitespace. "
           "Default: the host name.", "--name=<name>", check=_name),
    Option("host", "localhost", group="connection"),
    Option("port", 6379, group="connection"),
    Option("db", 0, group="connection"),
    Option("url", None, group="connection"),
    Option("namespace", "", group="connection"),
    Option("embedded", None, group="connection"),
    Option("wait_replicas", 0, group="connection"),
    Option("wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS, group="connection"),
    Option("lease", 10.0, "A manager silent this long loses its name, and other managers take its "
           "running jobs back; default: 10.", "--lease=<seconds>", number, _lease),
    Option("heartbeat", None, "How often the lease is renewed (and lapsed managers reaped); "
           "default: min(1, lease / 3).", "--heartbeat=<seconds>", number),
    Option("graceful_timeout", 25.0, "On TERM, how long running jobs may take to finish before they "
           "are killed and requeued; default: 25.", "--graceful-timeout=<seconds>", number,
           _not_negative, reload=True),
    Option("max_attempts", 3, "Runs a job gets (failures, deaths, time limits) before it goes to the "
           "failed list, unless it says; default: 3.", "--max-attempts=<n>", whole(1), reload=True),
    Option("backoff", 1.0, "First retry delay; doubles each attempt; default: 1.", "--backoff=<seconds>",
           number, reload=True),
    Option("job_timeout", None, "Time limit of a job that sets none; default: none.",
           "--job-timeout=<seconds>", number, _positive, reload=True),
    Option("kill_grace", 5.0, "How long a job may ignore its time limit before its worker is killed; "
           "default: 5.", "--kill-grace=<seconds>", number, _not_negative, reload=True),
    Option("max_jobs_per_worker", None, "Replace a worker after this many jobs.",
           "--max-jobs-per-worker=<n>", whole(1), _positive, reload=True),
    Option("max_memory_per_worker", None, "Replace a worker, after its job, once it uses more resident "
           "memory than this (MB).", "--max-memory-per-worker=<mb>", number, _positive, reload=True),
    Option("prefetch", 1, "Jobs a worker claims per round trip: a number (default: 1, none), or auto: "
           "a batch that grows while jobs are quick and the queue is deep, and is one job when jobs "
           "are long. A worker's death charges an attempt only to the job it ran.",
           "--prefetch=<n>", _prefetch_text, _prefetch),
    Option("result_ttl", DEFAULT_RESULT_TTL, "Seconds a task job's record (state, result, history) stays "
           "after it settles, unless the task or the call says; 0: none; default: 600.",
           "--result-ttl=<seconds>", whole(0), reload=True),
    Option("max_result_size", DEFAULT_MAX_RESULT_SIZE, "A result larger than this (bytes of JSON) fails "
           "its job; default: 1000000.", "--max-result-size=<bytes>", whole(1), reload=True),
    Option("poll_interval", 0.05, reload=True),  # the API's only; see Worker
    Option("history", DEFAULT_HISTORY, check=_history),
    Option("history_hours", DEFAULT_HISTORY[0], "Hours of per-minute statistics kept; default: 6.",
           "--history-hours=<h>", number, keyword="history"),
    Option("history_days", DEFAULT_HISTORY[1], "Days of per-day statistics kept; default: 7.",
           "--history-days=<d>", whole(1), keyword="history"),
    Option("metrics_port", None, "Serve Prometheus metrics on this port (0: any free one).",
           "--metrics-port=<port>", whole(0)),
    Option("metrics_host", "127.0.0.1", "Address the metrics are served on; default: 127.0.0.1.",
           "--metrics-host=<host>"),
)
BY_NAME = {option.name: option for option in OPTIONS}
# The options a Manager takes as keyword arguments (history_hours and _days arrive as history).
ARGUMENTS = tuple(option.name for option in OPTIONS if not option.keyword)
RELOADABLE = tuple(option.name for option in OPTIONS if option.reload)


def usage_lines(connection: str = "") -> str:
    """The option lines of ``qw-manager``'s usage text, in table order; ``connection`` (the block both
    CLIs share) goes where the connection options are."""
    lines = []
    for option in OPTIONS:
        if option.group == "connection":
            if connection and option.name == "host":
                lines.append(connection.rstrip("\n"))
        elif option.flag:
            lines.append(option.usage())
    return "\n".join(lines) + "\n"


def from_text(given: dict[str, Optional[str]]) -> dict[str, Any]:
    """``Manager`` keyword arguments from option texts keyed by flag (``--workers``): each option
    with a flag, parsed, or its default when it was not given."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.flag and not option.group:
            raw = given.get(option.cli)
            if option.repeat:
                raw = [item for text in ([raw] if isinstance(raw, str) else raw or [])
                       for item in listed(text, option.cli)] or None
                values[option.name] = option.default if raw is None else raw
                continue
            values[option.name] = option.default if raw is None else option.parse(raw, option.cli)
    values["history"] = (values.pop("history_hours"), values.pop("history_days"))
    return values


class Settings:
    """A manager's options as checked; a reload changes the reloadable ones, all or none.

    Every option is an attribute (``settings.graceful_timeout``); ``limits``
    and ``heartbeat`` are derived from them.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        self.given: dict[str, Any] = {}  # as given, before checks: what a reload cannot change
        self.update(values, names=ARGUMENTS)

    def update(self, values: dict[str, Any], names: tuple[str, ...] = RELOADABLE) -> None:
        """Check ``values`` for ``names`` (defaults for those missing) and set them; nothing is set
        unless every one is good."""
        self.apply(self.prepare(values, names))

    def prepare(self, values: dict[str, Any], names: tuple[str, ...] = RELOADABLE) -> dict[str, Any]:
        """Check ``values`` for ``names`` without setting anything; what :meth:`apply` takes."""
        given = {name: values.get(name, BY_NAME[name].default) for name in names}
        checked = {name: BY_NAME[name].check(name, value) for name, value in given.items()}
        merged = {**vars(self), **checked}
        lease, heartbeat = merged["lease"], merged["heartbeat"]
        if heartbeat is not None and not 0 < heartbeat <= lease / 2:
            raise ConfigError(f"heartbeat must be positive and at most half the lease ({lease / 2:g} s), "
                              f"got {heartbeat}")
        checked["limits"] = Limits(RetryPolicy(merged["max_attempts"], merged["backoff"]),
                                   merged["job_timeout"], merged["max_jobs_per_worker"],
                                   merged["max_memory_per_worker"], merged["result_ttl"],
                                   merged["max_result_size"])
        checked["heartbeat_interval"] = heartbeat or min(1.0, lease / 3)
        if "target" in checked:
            self._what_runs(checked)
        return {"given": {**self.given, **given}, **checked}

    @staticmethod
    def _what_runs(checked: dict[str, Any]) -> None:
        # A module named as the target is a task module (qw-manager myapp.tasks).
        target, tasks = checked["target"], checked["tasks"] or ()
        if target is not None and classify(target) == MODULE:
            checked["target"], tasks = None, (target, *(t for t in tasks if t != target))
        checked["tasks"] = tuple(tasks) or None
        if checked["target"] is None and not tasks and not checked["allow"]:
            raise ConfigError("nothing to run: name a target ('pkg.mod:fn') or a module of tasks")

    def apply(self, prepared: dict[str, Any]) -> None:
        """Set what :meth:`prepare` checked."""
        for name, value in prepared.items():
            setattr(self, name, value)

    def reloadable(self) -> dict[str, Any]:
        """The current values of the options a reload may change."""
        return {name: getattr(self, name) for name in RELOADABLE}

    def fixed(self) -> dict[str, Any]:
        """What a reload cannot change, as given at start (a configuration file that changes one of
        them gets a warning)."""
        return {name: self.given[name] for name in ARGUMENTS if name not in RELOADABLE}
