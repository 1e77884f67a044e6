"""Jinja filters and globals: times, durations, JSON and query strings as the pages show them."""

from __future__ import annotations

import json
import time
from typing import Any, Optional
from urllib.parse import urlencode

from jinja2 import Environment


def when(timestamp: Optional[float]) -> str:
    """A unix time as ``2026-12-02 06:30:00 UTC``; "-" for none."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(timestamp)))


def duration(seconds: Optional[float]) -> str:
    """Seconds as ``850ms``, ``12.5s``, ``14m``, ``3.2h``, ``2.0d``; "-" for none."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def ago(timestamp: Optional[float]) -> str:
    """How long ago a unix time was: ``12.5s ago``."""
    return "-" if timestamp is None else f"{duration(max(0.0, time.time() - float(timestamp)))} ago"


def pretty(value: Any) -> str:
    """A JSON value indented, as text (escaped like any other text where it is shown)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def query(**fields: Any) -> str:
    """A query string of the fields that are set: ``?state=failed&page=2``."""
    kept = {k: v for k, v in fields.items() if v not in (None, "", 0)}
    return "?" + urlencode(kept) if kept else ""


def percent(rate: Optional[float]) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def install(env: Environment) -> None:
    env.filters.update(when=when, duration=duration, ago=ago, pretty=pretty, percent=percent)
    env.globals.update(query=query)
