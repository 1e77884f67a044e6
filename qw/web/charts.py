"""Charts drawn on the server as SVG from the per-minute stats qw keeps: no chart library, no script.

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


def last_hour(client: Client, minutes: int = 60, now: Optional[float] = None) -> dict[str, Any]:
    """Per-minute figures of all managers over the last ``minutes`` (current minute last), and their summary."""
    now = time.time() if now is None else now
    periods = stats.read(client.redis, client.keys, None, stats.MINUTE, minutes, now)
    series = []
    for start, figures in periods:
        settled = sum(figures.counters.get(name, 0) for name in stats.OUTCOMES)
        failed = figures.counters.get("failed", 0) + figures.counters.get("retried", 0)
        series.append({"start": start, "settled": settled, "failed": failed})
    summary = stats.summary(stats.total(periods), (minutes - 1) * 60 + now % 60)
    return {"series": series, "summary": summary, "minutes": minutes}


def throughput_svg(series: list[dict[str, Any]]) -> Markup:
    """Bars of jobs settled per minute, the failed part of each drawn over it."""
    top = max([s["settled"] for s in series] + [1])
    step = WIDTH / max(1, len(series))
    shapes = []
    for i, point in enumerate(series):
        x = i * step
        for value, css in ((point["settled"], "bar"), (point["failed"], "bar-failed")):
            if value:
                h = max(1.0, (HEIGHT - 14) * value / top)
                shapes.append(f'<rect class="{css}" x="{x + 1:.1f}" y="{HEIGHT - h:.1f}" '
                              f'width="{max(1.0, step - 2):.1f}" height="{h:.1f}">'
                              f'<title>{escape(_clock(point["start"]))}: {point["settled"]} settled, '
                              f'{point["failed"]} failed or retried</title></rect>')
    return _svg("jobs settled per minute", shapes, f"max {top}/min")


def failure_svg(series: list[dict[str, Any]]) -> Markup:
    """A line of the share of settled jobs that failed or were retried, minute by minute (0 to 100 %)."""
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
    return _svg("failure rate per minute", shapes, "100 %")


def _svg(label: str, shapes: list[str], scale: str) -> Markup:
    body = "".join(shapes) or f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}">no jobs settled</text>'
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
                  f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>'
                  f'<text class="scale" x="2" y="10">{escape(scale)}</text>{body}</svg>')


def _clock(start: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(start))
