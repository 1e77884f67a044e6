"""Draw docs/benchmarks.png from the medians and ranges that scripts/bench.py sends on stdin.

Runs in a virtual environment of its own that has matplotlib, so matplotlib
never becomes part of qw's environment. Usage: ``python plot.py OUT.png < data.json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

QW = "#d62728"
OTHER = "#7f7f7f"
REFERENCE = "#c7c7c7"


def colour(label: str) -> str:
    if label.startswith("qw"):
        return QW
    return REFERENCE if label.startswith("reference") else OTHER


def thousands(value: float, _position: int) -> str:
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def bars(ax: Any, series: dict[str, list[Any]], title: str, unit: str, all_qw: bool = False) -> None:
    """Horizontal bars of the medians, whiskers from the lowest to the highest run."""
    labels = series["labels"]
    if not labels:
        ax.set_axis_off()
        return
    med, low, high = series["median"], series["low"], series["high"]
    ys = range(len(labels))
    errors = [[m - lo for m, lo in zip(med, low)], [hi - m for m, hi in zip(med, high)]]
    colours = [QW if all_qw else colour(lbl) for lbl in labels]
    ax.barh(ys, med, xerr=errors, color=colours, capsize=3, ecolor="black")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)
    ax.xaxis.set_major_formatter(FuncFormatter(thousands))
    for y, value, top in zip(ys, med, high):  # the label goes past the whisker
        ax.annotate(f"{value:,.0f}" if value >= 100 else f"{value:.2g}", (top, y), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=7)
    ax.margins(x=0.25)


def latency(ax: Any, p50: dict[str, list[Any]], p99: dict[str, list[Any]]) -> None:
    labels = p50["labels"]
    if not labels:
        ax.set_axis_off()
        return
    ys = list(range(len(labels)))
    ax.barh([y - 0.2 for y in ys], p50["median"], height=0.4, color=[colour(lbl) for lbl in labels],
            label="p50")
    ax.barh([y + 0.2 for y in ys], p99["median"], height=0.4, color=[colour(lbl) for lbl in labels],
            alpha=0.45, label="p99")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms from queue call to job start (log)")
    ax.set_title("Latency, idle worker: p50 (dark), p99 (light)", fontsize=10)


def memory(ax: Any, run: Any) -> None:
    if not run:
        ax.set_axis_off()
        return
    names = ["manager"] + [f"worker {i}" for i in range(1, len(run["before"]))]
    after = {p["pid"]: p for p in run["after"]}
    before_mb = [p["rss_mb"] or 0 for p in run["before"]]
    after_mb = [(after.get(p["pid"]) or {}).get("rss_mb") or 0 for p in run["before"]]
    ys = list(range(len(names)))
    ax.barh([y - 0.2 for y in ys], before_mb, height=0.4, color=QW, alpha=0.45, label="before")
    ax.barh([y + 0.2 for y in ys], after_mb, height=0.4, color=QW, label="after")
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlabel("MB resident (VmRSS)")
    ax.set_title(f"qw memory, before and after {run['jobs']:,} jobs", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")


def main() -> None:
    data = json.load(sys.stdin)
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    bars(axes[0][0], data["drain"], "Drain: jobs/s, 2 worker processes", "jobs/s")
    bars(axes[0][1], data["single"], "Queue one job at a time", "jobs/s")
    bars(axes[0][2], data["bulk"], "Bulk queue", "jobs/s")
    latency(axes[1][0], data["p50"], data["p99"])
    bars(axes[1][1], data["scaling"], "qw drain by number of workers", "jobs/s", all_qw=True)
    axes[1][1].set_ylabel("workers")
    memory(axes[1][2], data["memory"])
    fig.suptitle(f"Job queues on Redis, no-op jobs: median and range of the runs ({data['title']})",
                 fontsize=12)
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=90)


if __name__ == "__main__":
    main()
