#!/usr/bin/env python3
"""Lateness of delayed jobs, qw beside each peer's own delayed jobs: due time to job start, p50/p99.

Uses scripts/bench.py's parts: two private redis-servers (the broker and the
counter), each peer in its virtual environment under the cache directory
(installed on first use), and bench_peers/driver.py's ``lateness`` workload:
one idle worker process, --jobs jobs one at a time, each delayed by a random
0.2 to 0.4 s through the system's own API (qw ``delay=``, RQ ``enqueue_in``
with ``--with-scheduler``, Huey ``schedule(delay=)``, arq ``_defer_by``, SAQ
``scheduled``, Celery ``countdown``, Dramatiq ``delay``). Prints a Markdown
table.

Also writes the table, with the date, to --out (default docs/benchmarks-lateness.md).

Usage: python scripts/bench_lateness.py [--jobs=40] [--peers=qw,rq,huey,arq,saq,celery,dramatiq]
                                        [--cache=~/.cache/qw-bench] [--out=docs/benchmarks-lateness.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import bench

APIS = {"qw": "queue_job(delay=)", "rq": "enqueue_in (worker --with-scheduler)", "huey": "schedule(delay=)",
        "arq": "enqueue_job(_defer_by=)", "saq": "enqueue(scheduled=)", "celery": "apply_async(countdown=)",
        "dramatiq": "send_with_options(delay=)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--peers", default="qw,rq,huey,arq,saq,celery,dramatiq")
    parser.add_argument("--cache", default=str(Path("~/.cache/qw-bench").expanduser()))
    docs = Path(__file__).resolve().parent.parent / "docs"
    parser.add_argument("--out", default=str(docs / "benchmarks-lateness.md"))
    opts = parser.parse_args()
    cache = Path(opts.cache)
    rows = ["| system | API | p50 | p99 | max | jobs |", "| --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="qw-lateness-") as tmp:
        work = Path(tmp)
        broker, counter = bench.RedisServer(work, "broker"), bench.RedisServer(work, "counter")
        broker.start()
        counter.start()
        try:
            for system in [s.strip() for s in opts.peers.split(",") if s.strip()]:
                packages = bench.peer_constants(system).get("PACKAGES", [])
                python = bench.ensure_venv(cache / "venvs" / system, packages) if packages else sys.executable
                case = bench.Case("lateness", system, opts.jobs, processes=1, variant="lateness")
                result = bench.run_driver(case, python, broker, counter, work)
                if "error" in result:
                    error = result["error"][:80]
                    rows.append(f"| {bench.LABELS[system]} | {APIS[system]} | error: {error} | | | |")
                else:
                    rows.append(f"| {bench.LABELS[system]} | {APIS[system]} | {result['p50_ms']:.1f} ms | "
                                f"{result['p99_ms']:.1f} ms | {result['max_ms']:.1f} ms | {result['jobs']} |")
                print(rows[-1], file=sys.stderr, flush=True)
        finally:
            broker.stop()
            counter.stop()
    print("\n".join(rows))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    Path(opts.out).write_text("\n".join([
        "# Lateness of delayed jobs", "",
        f"Made by `scripts/bench_lateness.py` ({when}): one idle worker process per system, {opts.jobs} jobs "
        "one at a time, each delayed by 0.2 to 0.4 s through the system's own API; lateness is due time to "
        "the job's start. Side by side in one run, on the same private Redis.", "", *rows, ""]),
        encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
