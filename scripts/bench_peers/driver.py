"""Run one workload of one system, in that system's virtual environment; print one JSON line.

``scripts/bench.py`` starts this as ``<venv>/bin/python driver.py --system rq
--workload drain ...`` with this folder as the working directory, so the
``peer_<system>`` module and ``bench_job`` import from here, in the driver and
in the worker processes it starts.

Every ``peer_<system>`` module offers the same things:

- ``HAS_BULK``, ``WORKER_CONFIG``, ``SINGLE_API``, ``BULK_API``: what it runs;
- ``setup(host, port, variant)``: connect the producer;
- ``worker_commands(host, port, processes)``: the commands that start its workers;
- ``queue_single(count, mode, before_each)``: queue jobs one call at a time,
  calling ``before_each()`` (if given) before each call;
- ``queue_bulk(count)``: queue jobs with its bulk API (or its fastest way);
- ``call_single(count)``: queue a job and wait for its result, ``count`` times,
  one after the other; the seconds each call took. ``CALL_API`` says how it
  waits.

Workloads: ``single``, ``bulk`` (queue only, no workers), ``drain`` (jobs per
second of running workers), ``latency`` (queue call to job start, one idle
worker process), ``lateness`` (a delayed job's due time to its start, with the
system's own delayed jobs: ``queue_delayed(delay, mode)``, which returns the
due time on this host's clock), ``memory`` (resident memory of the workers
over a drain), ``call`` (queue a job and wait for its result, one at a time,
one idle worker process) and, for qw only, ``records`` (Redis memory of the
records that jobs keep, while they are kept and after they expired:
``queue_kept(count, ttl)``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Optional

import bench_job
import redis

HERE = Path(__file__).resolve().parent
BROKER_ENV = "QW_BENCH_BROKER"
PR_SET_CHILD_SUBREAPER = 36
LATENCY_GAP = 0.05  # up to this long idle before each latency sample, drawn at random
LATENESS_DELAY = (0.2, 0.4)  # seconds a lateness sample is delayed, drawn at random
# Jobs of the separate, untimed pass that counts round trips: bulk passes
# span a few of the largest batch (1000), so a partial batch does not skew it.
COUNT_TRIPS_SINGLE, COUNT_TRIPS_BULK = 500, 3000
COUNT_TRIPS_CALLS = 50
RECORD_SAMPLES = 5  # kept job hashes whose MEMORY USAGE the records run reads


def main() -> None:
    args = parse_args()
    broker_host, broker_port = split_address(args.broker)
    # The peer modules read these at import, as their worker processes do.
    os.environ[BROKER_ENV] = f"redis://{broker_host}:{broker_port}/0"
    os.environ[bench_job.COUNTER_ENV] = args.counter
    os.environ[bench_job.VARIANT_ENV] = args.variant
    become_subreaper()
    peer = importlib.import_module(f"peer_{args.system}")
    bench = Bench(args, peer, broker_host, broker_port)
    try:
        result = getattr(bench, f"run_{args.workload}")()
    finally:
        bench.stop_workers()
    result.update(workload=args.workload, system=args.system, variant=args.variant)
    print(json.dumps(result), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True)
    parser.add_argument("--workload", required=True,
                        choices=["single", "bulk", "drain", "latency", "lateness", "memory", "call",
                                 "records"])
    parser.add_argument("--broker", required=True, help="host:port of the Redis under test")
    parser.add_argument("--counter", required=True, help="host:port of the counter Redis")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--variant", default="")
    parser.add_argument("--logdir", default=".")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--ttl", type=int, default=60, help="result_ttl of the records run, seconds")
    return parser.parse_args()


def split_address(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def become_subreaper() -> None:
    """Adopt the orphans of the worker trees, so that killed grandchildren are reaped here.

    Their CPU time then adds up in this process's children's time, where the
    bench counts its own load, and none of them can outlive the run.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Bench:
    """One workload run: the two Redis connections, the worker processes, the measurements."""

    def __init__(self, args: argparse.Namespace, peer: Any, host: str, port: int) -> None:
        self.args = args
        self.peer = peer
        self.host, self.port = host, port
        self.broker = redis.Redis(host, port)
        self.counter = redis.Redis(*split_address(args.counter))
        self.workers: list[subprocess.Popen] = []
        self.broker.flushall()
        self.counter.flushall()
        peer.setup(host, port, args.variant)

    # -- queuing only --------------------------------------------------------

    def run_single(self) -> dict[str, Any]:
        self.peer.queue_single(20, bench_job.COUNT)  # warm: imports, connections, scripts loaded
        return self._timed_queue(lambda n: self.peer.queue_single(n, bench_job.COUNT), COUNT_TRIPS_SINGLE)

    def run_bulk(self) -> dict[str, Any]:
        self.peer.queue_bulk(20)
        return self._timed_queue(self.peer.queue_bulk, COUNT_TRIPS_BULK)

    def _timed_queue(self, queue: Callable[[int], None], count_jobs: int) -> dict[str, Any]:
        n = self.args.jobs
        stats = self.commandstats()
        started = time.perf_counter()
        queue(n)
        elapsed = time.perf_counter() - started
        result: dict[str, Any] = {"jobs": n, "seconds": elapsed, "rate": n / elapsed,
                                  "commands": self.commands_since(stats)}
        # Round trips are counted in a second, untimed pass: the counting
        # hooks cost CPU, and must not slow the timed one.
        trips = TripCounter(self.port)
        queue(count_jobs)
        result["round_trips_per_job"] = trips.stop() / count_jobs
        return result

    # -- with workers ----------------------------------------------------------

    def run_drain(self) -> dict[str, Any]:
        """Jobs per second of warm workers on a full queue.

        The workers are started and warmed up, then frozen with SIGSTOP while
        the jobs are queued, and thawed with SIGCONT: the clock runs from the
        thaw until the last job has run, so it counts neither start-up nor
        queuing.
        """
        n = self.args.jobs
        self.start_workers(self.args.processes)
        pids = self.tree()
        self.signal_all(pids, signal.SIGSTOP)
        self.counter.delete(bench_job.DONE_KEY)
        started = time.perf_counter()
        self.queue_fast(n)
        queued_in = time.perf_counter() - started
        stats = self.commandstats()
        started = time.perf_counter()
        self.signal_all(list(reversed(pids)), signal.SIGCONT)
        self.wait_count(n, started)
        elapsed = time.perf_counter() - started
        return {"jobs": n, "processes": self.args.processes, "seconds": elapsed, "rate": n / elapsed,
                "prequeue_seconds": queued_in, "commands": self.commands_since(stats)}

    def run_latency(self) -> dict[str, Any]:
        """Queue-call start to job start, one sample at a time, on one idle worker process.

        Before each sample the bench idles a random 0-50 ms, so a job lands at
        a random point of any polling cycle.
        """
        self.start_workers(1)
        samples: list[float] = []
        queued_at: list[float] = []

        def before_each() -> None:
            if queued_at:
                samples.append(self.wait_stamp() - queued_at.pop())
            time.sleep(random.uniform(0, LATENCY_GAP))
            queued_at.append(time.time())

        stats = self.commandstats()
        trips = TripCounter(self.port)  # its cost is nothing next to the waits here
        self.peer.queue_single(self.args.jobs, bench_job.STAMP, before_each)
        samples.append(self.wait_stamp() - queued_at.pop())
        ms = sorted(s * 1000 for s in samples)
        return {"jobs": len(ms), "p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 0.99),
                "mean_ms": statistics.fmean(ms), "max_ms": ms[-1],
                "round_trips_per_job": trips.stop() / len(ms), "commands": self.commands_since(stats)}

    def run_lateness(self) -> dict[str, Any]:
        """Due time to job start of delayed jobs, one at a time, on one idle worker process.

        Each job is delayed by a random 0.2 to 0.4 s, so that it falls due at
        any point of the system's polling cycle; the due time is taken right
        before the system's own queue call (the broker runs on this host).
        """
        self.start_workers(1)
        samples: list[float] = []
        for _ in range(self.args.jobs):
            due = self.peer.queue_delayed(random.uniform(*LATENESS_DELAY), bench_job.STAMP)
            samples.append(self.wait_stamp() - due)
        ms = sorted(s * 1000 for s in samples)
        return {"jobs": len(ms), "p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 0.99),
                "mean_ms": statistics.fmean(ms), "max_ms": ms[-1], "min_ms": ms[0]}

    def run_memory(self) -> dict[str, Any]:
        """Resident memory of the manager and its workers before and after a drain of many jobs."""
        n = self.args.jobs
        self.start_workers(self.args.processes)
        before = self.memory()
        self.counter.delete(bench_job.DONE_KEY)
        started = time.perf_counter()
        self.queue_fast(n)
        self.wait_count(n, started)
        elapsed = time.perf_counter() - started
        return {"jobs": n, "seconds": elapsed, "before": before, "after": self.memory()}

    def run_call(self) -> dict[str, Any]:
        """Queue one job and wait for its result, one call after the other, on one idle worker process.

        Each call's time is taken in the peer (inside its event loop for the
        asyncio ones); calls/s is the number of calls over the whole loop.
        """
        self.start_workers(1)
        self.peer.call_single(5)  # warm: the result path's connections, subscriptions, scripts
        n = self.args.jobs
        stats = self.commandstats()
        started = time.perf_counter()
        durations = self.peer.call_single(n)
        elapsed = time.perf_counter() - started
        commands = self.commands_since(stats)
        trips = TripCounter(self.port)  # an untimed pass: the hooks cost CPU
        self.peer.call_single(COUNT_TRIPS_CALLS)
        round_trips = trips.stop() / COUNT_TRIPS_CALLS
        ms = sorted(d * 1000 for d in durations)
        return {"jobs": n, "seconds": elapsed, "rate": n / elapsed, "p50_ms": statistics.median(ms),
                "p99_ms": percentile(ms, 0.99), "mean_ms": statistics.fmean(ms), "max_ms": ms[-1],
                "round_trips_per_job": round_trips, "commands": commands}

    def run_records(self) -> dict[str, Any]:
        """Redis memory of the records jobs keep: before, once ``--jobs`` jobs kept theirs, after the TTL.

        The jobs (queued in bulk, each with ``result_ttl`` ``--ttl`` and a
        small result) run on the workers; used_memory is read when all are
        done, with the MEMORY USAGE of a few kept hashes, and again once their
        TTL has passed and Redis has expired them.
        """
        n, ttl = self.args.jobs, self.args.ttl
        self.start_workers(self.args.processes)
        time.sleep(1.0)  # the manager's first duties (health, stats) have written their keys
        before = self.redis_memory()
        self.counter.delete(bench_job.DONE_KEY)
        started = time.perf_counter()
        self.peer.queue_kept(n, ttl)
        self.wait_count(n, started)
        drained = time.perf_counter() - started
        time.sleep(0.3)  # the last acknowledgements land
        kept = self.redis_memory()
        keys = []
        for key in self.broker.scan_iter(match="*job:*", count=1000):
            keys.append(key)
            if len(keys) == RECORD_SAMPLES:
                break
        sizes = [self.broker.memory_usage(key, samples=0) for key in keys]
        encodings = sorted({self.text(self.broker.object("encoding", key)) for key in keys})
        sample = {self.text(k): self.text(v) for k, v in self.broker.hgetall(keys[0]).items()} if keys else {}
        # Wait out the TTL (the first records expire ttl seconds after their
        # job ended), then until Redis has expired every one of them (the
        # warm-up jobs' records, there before, stay).
        settled = time.perf_counter()
        time.sleep(ttl)
        deadline = time.monotonic() + 60
        while self.count_records() > before["records"] and time.monotonic() < deadline:
            time.sleep(0.5)
        after = self.redis_memory()
        return {"jobs": n, "ttl": ttl, "seconds": drained, "before": before, "kept": kept, "after": after,
                "record_bytes": sizes, "record_encodings": encodings, "sample_record": sample,
                "expired_after_seconds": time.perf_counter() - settled}

    @staticmethod
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def count_records(self) -> int:
        return sum(1 for _ in self.broker.scan_iter(match="*job:*", count=5000))

    def redis_memory(self) -> dict[str, Any]:
        """The broker's used_memory, its keys, the job records among them, and all:finished."""
        finished = next(self.broker.scan_iter(match="*all:finished", count=1000), None)
        return {"used_memory": self.broker.info("memory")["used_memory"], "keys": self.broker.dbsize(),
                "records": self.count_records(),
                "finished_ids": self.broker.zcard(finished) if finished else 0,
                "finished_bytes": (self.broker.memory_usage(finished, samples=0) or 0) if finished else 0}

    def queue_fast(self, n: int) -> None:
        if self.peer.HAS_BULK:
            self.peer.queue_bulk(n)
        else:
            self.peer.queue_single(n, bench_job.COUNT)

    # -- worker processes --------------------------------------------------------

    def start_workers(self, processes: int) -> None:
        """Start the workers and return once ``processes`` distinct processes have run a job."""
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path)
        logdir = Path(self.args.logdir)
        for i, command in enumerate(self.peer.worker_commands(self.host, self.port, processes)):
            name = f"{self.args.system}-{self.args.workload}-{os.getpid()}-{i}.log"
            with open(logdir / name, "wb") as log:  # the child keeps its own copy of the descriptor
                self.workers.append(subprocess.Popen(command, cwd=HERE, env=env, stdout=log,
                                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        self.warm_up(processes)

    def warm_up(self, processes: int) -> None:
        # Jobs are queued in small rounds until each worker process has run
        # one and every job queued so far is done: then all are up and idle.
        deadline = time.monotonic() + 90
        queued = 0
        while time.monotonic() < deadline:
            for proc in self.workers:
                if proc.poll() is not None:
                    raise SystemExit(f"a worker command exited with code {proc.returncode}: {proc.args}")
            self.peer.queue_single(2 * processes, bench_job.WARM)
            queued += 2 * processes
            round_end = time.monotonic() + 1.0
            while time.monotonic() < round_end:
                done = int(self.counter.get(bench_job.DONE_KEY) or 0)
                if done >= queued and self.counter.scard(bench_job.PIDS_KEY) >= processes:
                    time.sleep(0.3)  # let the last ones go back to waiting
                    return
                time.sleep(0.02)
        raise SystemExit(f"workers not ready after 90 s ({self.counter.scard(bench_job.PIDS_KEY)} "
                         f"of {processes} processes ran a job)")

    def tree(self) -> list[int]:
        """The worker processes and all their descendants, parents before children."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = read_stat(int(entry))
                if stat:
                    children.setdefault(int(stat[1]), []).append(int(entry))
        order: list[int] = []
        todo = [p.pid for p in self.workers if p.poll() is None]
        while todo:
            pid = todo.pop(0)
            order.append(pid)
            todo.extend(children.get(pid, []))
        return order

    def signal_all(self, pids: list[int], signum: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop_workers(self) -> None:
        """Freeze the whole tree (nothing respawns), then kill it, process by process, and reap.

        Grandchildren orphaned by the kill are ours to reap (subreaper), so
        their CPU time is counted with the bench's own.
        """
        if not self.workers:
            return
        pids = self.tree()
        self.signal_all(pids, signal.SIGSTOP)
        self.signal_all(pids, signal.SIGKILL)
        for proc in self.workers:
            proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # adopted grandchildren
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)
        self.workers = []

    def memory(self) -> list[dict[str, Any]]:
        """VmRSS and VmHWM (peak) of each process of the tree, in MB; the first is the manager."""
        out = []
        for pid in self.tree():
            fields = {}
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
                for line in status:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        fields[key] = int(value.split()[0]) / 1024
            out.append({"pid": pid, "rss_mb": fields.get("VmRSS"), "hwm_mb": fields.get("VmHWM")})
        return out

    # -- measuring -----------------------------------------------------------------

    def wait_count(self, n: int, started: float) -> None:
        """Poll the counter until ``n`` jobs ran; sleep less as the end nears."""
        deadline = started + self.args.timeout
        while True:
            done = int(self.counter.get(bench_job.DONE_KEY) or 0)
            now = time.perf_counter()
            if done >= n:
                return
            if now > deadline:
                raise SystemExit(f"only {done} of {n} jobs ran in {self.args.timeout:g} s")
            rate = done / (now - started) if done else 0
            left = (n - done) / rate if rate else 0.05
            time.sleep(min(max(left / 4, 0.001), 0.05))

    def wait_stamp(self) -> float:
        reply = self.counter.blpop([bench_job.STAMPS_KEY], timeout=30)
        if reply is None:
            raise SystemExit("a latency job did not start within 30 s")
        return float(reply[1])

    def commandstats(self) -> dict[str, int]:
        """Calls per command name on the broker (Lua scripts' own calls included)."""
        info = self.broker.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}

    def commands_since(self, before: dict[str, int]) -> dict[str, int]:
        """Calls per command since ``before``, less the bench's own INFO."""
        after = self.commandstats()
        delta = {k: v - before.get(k, 0) for k, v in sorted(after.items()) if k != "info"}
        return {k: v for k, v in delta.items() if v}


class TripCounter:
    """Counts the producer's round trips to the broker, for any client library.

    It hooks the socket methods of this process: a round trip starts with
    the first send after data came back on a socket connected to the broker
    port (so a pipeline sent in several writes counts once). The bench's
    own traffic goes to the counter Redis, or happens outside the window.
    """

    SENDS = ("send", "sendall", "sendmsg")
    RECVS = ("recv", "recv_into", "recvfrom", "recvfrom_into")

    def __init__(self, port: int) -> None:
        self.port = port
        self.trips = 0
        self._sent: weakref.WeakKeyDictionary[socket.socket, bool] = weakref.WeakKeyDictionary()
        self._originals = {name: getattr(socket.socket, name) for name in (*self.SENDS, *self.RECVS)}
        for name in self.SENDS:
            setattr(socket.socket, name, self._send_hook(self._originals[name]))
        for name in self.RECVS:
            setattr(socket.socket, name, self._recv_hook(self._originals[name]))

    def _ours(self, sock: socket.socket) -> bool:
        try:
            return sock.getpeername()[1] == self.port
        except (OSError, IndexError, TypeError):
            return False

    def _send_hook(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def send(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
            if not self._sent.get(sock, False) and self._ours(sock):
                self.trips += 1
                self._sent[sock] = True
            return original(sock, *args, **kwargs)

        return send

    def _recv_hook(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def recv(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
            got = original(sock, *args, **kwargs)
            if got and sock in self._sent:
                self._sent[sock] = False
            return got

        return recv

    def stop(self) -> int:
        """Remove the hooks; the round trips counted."""
        for name, original in self._originals.items():
            setattr(socket.socket, name, original)
        return self.trips


def read_stat(pid: int) -> Optional[list[str]]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, ..."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


if __name__ == "__main__":
    sys.exit(main())
