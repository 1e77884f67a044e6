"""When a recurring schedule fires: a pure function of its definition and a time, tested directly.

Two kinds of schedule:

- **every** ``every`` seconds on absolute time, shifted by ``offset``
  (``0 <= offset < every``): the fire times are ``offset + k * every``
  unix seconds, so a schedule fires at the same instants whichever manager
  computes them, and daylight saving time never moves an interval.
- **cron**: a standard five-field expression (or ``@hourly``, ``@daily``,
  ...) in the time zone ``tz`` (default UTC), through ``cronsim``, which
  follows Debian cron's rules for daylight saving time: a job at a fixed
  time that falls in the spring-forward gap runs once, at the end of the
  gap; one in the repeated fall-back hour runs once, at its first copy;
  a job whose hour field is ``*`` (hourly, every few minutes) runs in both
  copies of the repeated hour, as the clock on the wall says.

Times are unix seconds (floats, rounded to the millisecond). What to do
about fires that every manager missed is :func:`plan`'s: ``skip`` them,
fire the ``latest`` one, or ``all`` of them (at most ``max_catchup``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .exceptions import ConfigError

CATCHUP = ("skip", "latest", "all")
DEFAULT_MAX_CATCHUP = 100
#: A fire this late (seconds) still counts as on time; later, it was missed (no manager ran).
GRACE = 1.0
#: Fires walked at most to find the missed ones (a cron every minute: about a week).
WALK = 10_000
# The names cron understands for common schedules.
NICKNAMES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


@dataclass(frozen=True)
class Recurrence:
    """When a schedule fires: ``every`` (and ``offset``) seconds, or ``cron`` in ``tz``; what to do
    about missed fires (``catchup``, ``max_catchup``). Checked when built."""

    every: Optional[float] = None
    offset: float = 0.0
    cron: Optional[str] = None
    tz: Optional[str] = None
    catchup: str = "skip"
    max_catchup: int = DEFAULT_MAX_CATCHUP

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ConfigError("a schedule needs every= or cron=, one of them")
        if self.every is not None:
            every = _seconds(self.every, "every")
            if every <= 0:
                raise ConfigError(f"every must be positive, got {self.every}")
            offset = _seconds(self.offset, "offset")
            if not 0 <= offset < every:
                raise ConfigError(f"offset must be at least 0 and smaller than every ({every:g} s), "
                                  f"got {offset:g}")
            if self.tz is not None:
                raise ConfigError("tz is for cron schedules: every runs on absolute time")
            object.__setattr__(self, "every", every)
            object.__setattr__(self, "offset", offset)
        else:
            if self.offset:
                raise ConfigError("offset is for every= schedules")
            object.__setattr__(self, "cron", check_cron(self.cron))
            zone(self.tz)
        if self.catchup not in CATCHUP:
            raise ConfigError(f"unknown catch-up policy {self.catchup!r}; use one of: {', '.join(CATCHUP)}")
        count = self.max_catchup
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"max_catchup must be a whole number of at least 1, got {self.max_catchup!r}")

    def next_after(self, t: float) -> float:
        """The first fire time strictly after ``t`` (unix seconds)."""
        if self.every is not None:
            every, offset = float(self.every), self.offset
            k = math.floor((t - offset) / every) + 1
            due = _ms(offset + k * every)
            return due if due > t else _ms(offset + (k + 1) * every)
        return _cron_after(self.cron or "", zone(self.tz), t)

    def describe(self) -> str:
        """``every 300 s (+30 s)`` or ``cron 0 3 * * * Europe/Paris``, for listings."""
        if self.every is not None:
            return f"every {self.every:g} s" + (f" (+{self.offset:g} s)" if self.offset else "")
        return f"cron {self.cron} {self.tz or 'UTC'}"


@dataclass(frozen=True)
class Plan:
    """What to do now about a schedule whose fire was due at ``due``: the fire times to run (oldest
    first), the next due time, and how many missed fires are skipped."""

    fires: tuple[float, ...]
    next_due: float
    missed: int = 0


def plan(rule: Recurrence, due: float, now: float) -> Plan:
    """The fires of ``rule`` to run at ``now`` (Redis's clock) for the fire expected at ``due``.

    On time (at most :data:`GRACE` late): that one fire. Missed (every
    manager was down): ``skip`` runs none and waits for the next fire after
    now; ``latest`` runs the most recent missed one; ``all`` runs each
    missed one, the most recent ``max_catchup`` of them.
    """
    if now - due <= GRACE:
        return Plan((due,), rule.next_after(due))
    missed = [due]
    t = due
    for _ in range(WALK):
        t = rule.next_after(t)
        if t > now:
            break
        missed.append(t)
    next_due = rule.next_after(now)
    if rule.catchup == "skip":
        return Plan((), next_due, len(missed))
    keep = 1 if rule.catchup == "latest" else rule.max_catchup
    fires = tuple(missed[-keep:])
    return Plan(fires, next_due, len(missed) - len(fires))


def check_cron(expression: Optional[str]) -> str:
    """``expression`` as five cron fields (nicknames expanded), or a :class:`ConfigError` naming the
    bad field."""
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(f"cron must be a cron expression such as '0 3 * * *', got {expression!r}")
    text = NICKNAMES.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ConfigError(f"cron expression {expression!r} has {len(fields)} field(s); it needs 5: "
                          f"{' '.join(_FIELDS)} (or @hourly, @daily, @weekly, @monthly, @yearly)")
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except CronSimError as exc:
        what = str(exc)
        field = next((f for f in _FIELDS if f in what), None)
        if field is not None:
            value = fields[_FIELDS.index(field)]
            raise ConfigError(f"cron expression {expression!r}: bad {field} field {value!r}") from None
        raise ConfigError(f"cron expression {expression!r}: {what}") from None
    return text


def zone(name: Optional[str]) -> ZoneInfo | timezone:
    """The time zone called ``name`` (None: UTC), or a :class:`ConfigError`."""
    if name is None or name == "UTC":
        return timezone.utc
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", name) or ".." in name:
        raise ConfigError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from None


def _cron_after(expression: str, tz: ZoneInfo | timezone, t: float) -> float:
    # cronsim works in whole minutes and returns times after the start
    # minute; start one minute back so that a fire at exactly t's minute
    # (later than t) is not lost, and skip the fires at or before t.
    start = datetime.fromtimestamp(math.floor(t) - 60, tz)
    for fire in CronSim(expression, start):
        stamp = fire.timestamp()
        if stamp > t:
            return _ms(stamp)
    # cronsim gives up after 50 years without a fire.
    raise ConfigError(f"cron expression {expression!r} never fires")  # pragma: no cover


def _seconds(value: object, what: str) -> float:
    from datetime import timedelta

    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    return float(value)


def _ms(t: float) -> float:
    return round(t, 3)
