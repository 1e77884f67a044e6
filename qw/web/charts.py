"""Charts drawn on the server as SVG from the per-minute stats qw keeps: no chart library, no script.

The managers keep minutes for their history (6 hours by default), so the
overview offers 1 to 24 hours; beyond the history the bars are empty.

Colours come from the stylesheet (classes on the shapes), since the
Content-Security-Policy allows no inline style.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from markupsafe import Markup, escape

from .. import stats
from ..client import Client

WIDTH, HEIGHT = 600, 120
BARS = 60
DAYS = 7  # the managers' default history of days


def recent(client: Client, hours: int = 1, now: Optional[float] = None,
           scope: Optional[stats.Scope] = None) -> dict[str, Any]:
    """The figures of ``scope`` (all managers, or one task or named queue) over the last ``hours``
    in :data:`BARS` bars (the current last), and a summary."""
    now = time.time() if now is None else now
    minutes = hours * 60
    scope = scope or stats.Scope()
    periods = stats.read(client.redis, client.keys, scope, stats.MINUTE, minutes, now)
    step = max(1, minutes // BARS)  # minutes per bar
    series = []
    for first in range(0, len(periods), step):
        chunk = periods[first:first + step]
        figures = stats.total(chunk)
        settled = sum(figures.counters.get(name, 0) for name in stats.OUTCOMES)
        failed = figures.counters.get("failed", 0) + figures.counters.get("retried", 0)
        series.append({"start": chunk[0][0], "settled": settled, "failed": failed})
    summary = stats.summary(stats.total(periods), (minutes - 1) * 60 + now % 60, scope.uncounted)
    return {"series": series, "summary": summary, "hours": hours, "step": step, "scope": scope.label}


def days(client: Client, count: int = DAYS, now: Optional[float] = None,
         scope: Optional[stats.Scope] = None) -> list[dict[str, Any]]:
    """The figures of ``scope`` (default: all managers) per UTC day, the last ``count`` days, newest first."""
    now = time.time() if now is None else now
    scope = scope or stats.Scope()
    rows = []
    for start, figures in reversed(stats.read(client.redis, client.keys, scope, stats.DAY, count, now)):
        elapsed = now - start if start + 86400 > now else 86400
        rows.append({"day": time.strftime("%Y-%m-%d", time.gmtime(start)),
                     **stats.summary(figures, elapsed, scope.uncounted)})
    return rows


def throughput_svg(series: list[dict[str, Any]], step: int = 1) -> Markup:
    """Bars of jobs settled per ``step`` minutes, the failed part of each drawn over it."""
    top = max([s["settled"] for s in series] + [1])
    slot = WIDTH / max(1, len(series))  # pixels per bar
    shapes = []
    for i, point in enumerate(series):
        x = i * slot
        for value, css in ((point["settled"], "bar"), (point["failed"], "bar-failed")):
            if value:
                h = max(1.0, (HEIGHT - 14) * value / top)
                shapes.append(f'<rect class="{css}" x="{x + 1:.1f}" y="{HEIGHT - h:.1f}" '
                              f'width="{max(1.0, slot - 2):.1f}" height="{h:.1f}">'
                              f'<title>{escape(_clock(point["start"]))}: {point["settled"]} settled, '
                              f'{point["failed"]} failed or retried</title></rect>')
    return _svg(f"jobs settled per {step} min", shapes, f"max {top} per {step} min")


def failure_svg(series: list[dict[str, Any]]) -> Markup:
    """A line of the share of settled jobs that failed or were retried, bar by bar (0 to 100 %)."""
    step = WIDTH / max(1, len(series))
    points = []
    shapes = []
    for i, point in enumerate(series):
        if point["settled"]:
            rate = point["failed"] / point["settled"]
            x, y = i * step + step / 2, HEIGHT - (HEIGHT - 14) * rate
            points.append(f"{x:.1f},{y:.1f}")
            shapes.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2">'
                          f'<title>{escape(_clock(point["start"]))}: {rate * 100:.1f} %</title></circle>')
    if len(points) > 1:
        shapes.insert(0, f'<polyline class="line" points="{" ".join(points)}"/>')
    return _svg("failure rate", shapes, "100 %")


def _svg(label: str, shapes: list[str], scale: str) -> Markup:
    body = "".join(shapes) or f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}">no jobs settled</text>'
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-label="{escape(label)}">'
                  f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>'
                  f'<text class="scale" x="2" y="10">{escape(scale)}</text>{body}</svg>')


def _clock(start: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(start))
