#!/usr/bin/env python3
"""qw's flow figures, side by side in one run: priorities, and a large group's callback.

Starts its own redis-server (no persistence) on a free loopback port and
measures, with a manager of 2 workers on a no-op task:

- the drain of --jobs jobs queued before the workers start, plain and spread
  over 10 priorities, interleaved --reps times (the ratio is the figure);
- a group of --members members with a callback: from the end of the last
  member's run to the start of the callback's, and the whole group's time.

Prints a Markdown report (also written to --out, default docs/benchmarks-flow.md).

Usage: python scripts/bench_flow.py [--jobs=20000] [--members=10000] [--reps=3]
                                    [--out=docs/benchmarks-flow.md]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import flow_tasks  # noqa: E402
from profile_drain import start_redis  # noqa: E402

import qw  # noqa: E402
from qw import Client, Manager  # noqa: E402
from qw.defaults import set_default_client  # noqa: E402


def drain(port: int, jobs: int, priorities: int) -> float:
    """jobs/s of 2 workers draining ``jobs`` queued first (over ``priorities`` levels if not 0)."""
    client = Client(host="127.0.0.1", port=port)
    client.redis.flushall()
    if priorities:
        for i in range(priorities):
            share = range(i * jobs // priorities, (i + 1) * jobs // priorities)
            client.queue_jobs(({"n": n} for n in share), priority=i - priorities // 2)
    else:
        client.queue_jobs({"n": n} for n in range(jobs))
    manager = Manager("flow_tasks:noop", host="127.0.0.1", port=port, name="flow", num_workers=2)
    started = time.monotonic()
    manager.start()
    while (client.redis.llen("all:jobs") or client.redis.zcard("all:jobs:prio")
           or any(client.get_all_pending_jobs().values())):
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    manager.stop()
    return jobs / elapsed


def group_callback(port: int, members: int) -> tuple[float, float]:
    """(seconds from the last member's end to the callback's start, seconds for the whole group)."""
    client = Client(host="127.0.0.1", port=port)
    client.redis.flushall()
    set_default_client(client)
    manager = Manager("flow_tasks", host="127.0.0.1", port=port, name="flow", num_workers=2)
    manager.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        callback = qw.group(flow_tasks.stamp.s(n) for n in range(members)).then(flow_tasks.latest.s()).delay()
        last_member_end, callback_start = callback.result(timeout=600)
        elapsed = time.monotonic() - started
    finally:
        manager.stop()
        set_default_client(None)
    return callback_start - last_member_end, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks-flow.md"))
    args = parser.parse_args()
    plain, spread = [], []
    with tempfile.TemporaryDirectory() as directory:
        proc, port = start_redis(directory)
        try:
            for _ in range(args.reps):
                plain.append(drain(port, args.jobs, 0))
                spread.append(drain(port, args.jobs, 10))
            gap, whole = group_callback(port, args.members)
        finally:
            proc.kill()
            proc.wait()
    ratio = statistics.median(s / p for s, p in zip(spread, plain))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join([
        "# qw: flow benchmarks",
        "",
        f"Made by `scripts/bench_flow.py` ({when}), 2 worker processes, a no-op task; "
        f"median of {args.reps} interleaved runs.",
        "",
        "| figure | value | goal |",
        "| --- | ---: | ---: |",
        f"| drain of {args.jobs:,} jobs, plain (jobs/s) | {statistics.median(plain):,.0f} | |",
        f"| ... spread over 10 priorities (jobs/s) | {statistics.median(spread):,.0f} | |",
        f"| ... ratio, run by run | {ratio:.2f}x | 0.9x |",
        f"| group of {args.members:,} members: last member's end to the callback's start (s) "
        f"| {gap:.3f} | < 1 s |",
        f"| ... the whole group, queued and run (s) | {whole:.1f} | |",
        "",
    ])
    print(report)
    Path(args.out).write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
