"""``@qw.periodic``: a task that recurs, its schedule written to Redis by the managers that load it.

::

    @qw.periodic(cron="0 3 * * *", tz="Europe/Paris")
    def nightly_cleanup(): ...

    @qw.periodic(every=timedelta(minutes=5), offset=timedelta(seconds=30), catchup="latest")
    def poll_feeds(): ...

The schedule takes the task's name; its options (``every``, ``offset``,
``cron``, ``tz``, ``catchup``, ``max_catchup``, ``no_overlap``) are checked
at import, as the task's own (``name``, ``queue``, ``max_attempts``,
``timeout``) are. A manager that loads the module writes the definition at
start (:func:`publish`): the same definition changes nothing, a changed one
replaces the old one, and the change is logged. Redis stays the one source
of truth: ``qw-client recur list`` shows it, ``recur remove`` deletes it
until a manager that loads the module starts again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .exceptions import ConfigError
from .recurrence import Recurrence
from .tasks import Task, task

log = logging.getLogger("qw.manager")

SCHEDULE_OPTIONS = ("every", "offset", "cron", "tz", "catchup", "max_catchup", "no_overlap")


@dataclass(frozen=True)
class Periodic:
    """A periodic task: the task, when it recurs, and whether a fire waits for the last run."""

    task: Task
    rule: Recurrence
    no_overlap: bool = False


#: Periodic tasks declared in this process, by task name.
schedules: dict[str, Periodic] = {}


def periodic(fn: Optional[Callable[..., Any]] = None, /, **options: Any) -> Any:
    """Declare a task that recurs: ``@qw.periodic(every=...)`` or ``@qw.periodic(cron=..., tz=...)``.

    The function takes no arguments. Schedule options as for
    ``Client.recur``; the other options are ``qw.task``'s.
    """
    if fn is not None:
        raise ConfigError("qw.periodic needs its schedule: @qw.periodic(every=...) or @qw.periodic(cron=...)")
    timing = {key: options.pop(key) for key in SCHEDULE_OPTIONS if key in options}
    no_overlap = bool(timing.pop("no_overlap", False))
    rule = Recurrence(**timing)
    declare = task(**options)

    def wrap(function: Callable[..., Any]) -> Task:
        declared = declare(function)
        try:
            declared._check_fits((), {})
        except TypeError as exc:
            raise ConfigError(f"periodic task {declared.name} is called with no arguments: {exc}") from None
        schedules[declared.name] = Periodic(declared, rule, no_overlap)
        return declared

    return wrap


def publish(client: Any, tasks: Mapping[str, Task], manager: str) -> None:
    """Write the schedule of every periodic task in ``tasks`` (what a manager loaded); log changes."""
    for name, loaded in tasks.items():
        spec = schedules.get(name)
        if spec is None or spec.task is not loaded:
            continue
        rule = spec.rule
        outcome = client.recur(name, task=name, every=rule.every, offset=rule.offset, cron=rule.cron,
                               tz=rule.tz,
                               catchup=rule.catchup, max_catchup=rule.max_catchup, no_overlap=spec.no_overlap,
                               queue=loaded.queue, max_attempts=loaded.max_attempts, timeout=loaded.timeout)
        if outcome == "created":
            log.info("manager %s: schedule %s created (%s)", manager, name, rule.describe())
        elif outcome == "replaced":
            log.warning("manager %s: schedule %s changed: now %s", manager, name, rule.describe())
