"""When a delayed job is due: ``delay=`` (seconds or a timedelta) or ``at=`` (an aware datetime).

A due time is kept as ``("in", seconds)`` or ``("at", unix seconds)``; the
schedule script turns "in" into a time on Redis's clock, so a producer's
skewed clock cannot move a delay. A naive datetime is refused rather than
guessed: its time zone is the one thing qw cannot know.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Optional, Union

from .exceptions import ConfigError, JobDataError

#: ("in", seconds from now on Redis's clock) or ("at", unix seconds).
Due = tuple[str, float]
Delay = Union[int, float, timedelta]


def due(delay: Optional[Delay] = None, at: Optional[datetime] = None) -> Optional[Due]:
    """The due time ``delay`` or ``at`` give (None: neither, the job is queued now)."""
    if delay is not None and at is not None:
        raise ConfigError("give delay or at, not both")
    if delay is not None:
        return "in", seconds(delay, "delay")
    if at is not None:
        return "at", timestamp(at)
    return None


def seconds(value: Any, what: str) -> float:
    """``value`` (a number of seconds or a timedelta) as seconds, at least 0 and finite."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    if not 0 <= value < math.inf:
        raise ConfigError(f"{what} must be 0 or more seconds, got {value}")
    return float(value)


def timestamp(at: Any) -> float:
    """Unix seconds of the aware datetime ``at``; a naive one is a :class:`JobDataError`."""
    if not isinstance(at, datetime):
        raise ConfigError(f"at must be a datetime with a time zone, got {at!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise JobDataError(f"at={at.isoformat()} has no time zone: give one "
                           "(tzinfo=ZoneInfo('Europe/Paris'), timezone.utc, ...); qw does not guess it")
    return at.timestamp()


def parse_at(text: str, what: str = "--at") -> datetime:
    """An ISO 8601 time with its offset (``2026-12-24T09:00:00+01:00``, or ``Z``), checked."""
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ConfigError(f"{what}={text!r} is not an ISO 8601 time such as "
                          "2026-12-24T09:00:00+01:00") from None
    if at.utcoffset() is None:
        raise JobDataError(f"{what}={text} has no time zone: add its offset (+01:00, Z); "
                           "qw does not guess it")
    return at
