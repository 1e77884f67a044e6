"""qw, from the current checkout: a ``qw-manager`` process with N workers.

Variants (``--variant``) choose where single jobs are queued, for the latency
run: ``all`` (``all:jobs``, which idle workers wait on with BLMOVE),
``manager`` (``bench:jobs``, polled in 50 ms slices) or ``worker`` (the
first worker's own list, ``bench:1:jobs``); ``prefetch`` runs the workers
with ``--prefetch`` PREFETCH. ``task`` runs the same no-op as a task
(``noop_task`` queued one at a time with ``send_with``, in bulk with
``map``, the manager started on this module) with ``result_ttl=0``: nothing
is kept of a job once it is done. ``task-kept`` queues it with the defaults
(``delay``, ``map``), so each job keeps its record, its small result with it,
for the manager's ``--result-ttl``, given explicitly as the default 600 s.
``task-prefetch`` and ``task-kept-prefetch`` do the same with the prefetch.
``call`` is ``task-kept`` for the call workload (``noop_task.call``).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

import bench_job

import qw
from qw import Client
from qw.keeping import DEFAULT_RESULT_TTL
from qw.tasks import set_default_client

PACKAGES: list[str] = []  # runs in the interpreter running the bench: this checkout's qw
VERSIONS = ["qw", "redis", "hiredis"]
MANAGER = "bench"
HAS_BULK = True
WORKER_CONFIG = "qw-manager --workers N"
SINGLE_API = "Client.queue_job"
BULK_API = "Client.queue_jobs (batches of 1000 jobs per round trip)"
CALL_API = "`task.call(..., timeout=10)`: queue, then BLPOP on `all:settled:<id>`"

PREFETCH = 10
_client: Optional[Client] = None
_route: dict[str, str] = {}
_worker_options: list[str] = []
_code = ["peer_qw:noop"]
_tasks = False
_keep: dict[str, int] = {}  # the queue calls' result_ttl: {} keeps the record (the default)


def noop(job_id: str, job_data: dict) -> None:
    """The target: report that the job ran."""
    bench_job.ran(job_data["m"])


@qw.task
def noop_task(mode: int) -> str:
    """The same job as a task: its only argument is the mode; a small result, kept or not."""
    bench_job.ran(mode)
    return bench_job.RESULT


def setup(host: str, port: int, variant: str) -> None:
    """Connect the producer."""
    global _client, _tasks
    _client = Client(host, port)
    _client.ping()
    if variant.startswith("task") or variant == "call":
        set_default_client(_client)
        _code[:] = ["peer_qw"]  # a module of tasks: the manager runs noop_task
        _tasks = True
        if variant.endswith("-prefetch"):
            _worker_options[:] = ["--prefetch", str(PREFETCH)]
        if variant.startswith("task-kept") or variant == "call":
            _worker_options[:0] = ["--result-ttl", str(DEFAULT_RESULT_TTL)]
        else:
            _keep.update(result_ttl=0)
    if variant == "manager":
        _route.update(manager=MANAGER)
    elif variant == "worker":
        _route.update(worker=f"{MANAGER}:1")
    elif variant == "prefetch":
        _worker_options[:] = ["--prefetch", str(PREFETCH)]


def worker_commands(host: str, port: int, processes: int) -> list[list[str]]:
    """One manager with ``processes`` workers."""
    return [[sys.executable, "-m", "qw.cli.manager", "--host", host, "--port", str(port),
             "--name", MANAGER, "--workers", str(processes), "--level", "warning", *_worker_options,
             *_code]]


def queue_single(count: int, mode: int, before_each: Optional[Callable[[], None]] = None) -> None:
    """Queue ``count`` jobs one call at a time."""
    assert _client is not None
    data = {"m": mode}
    queue_job = _client.queue_job
    # Warm-up jobs go to all:jobs: the worker of the "worker" variant is not
    # registered until it has started.
    route = {} if mode == bench_job.WARM else _route
    if _tasks:
        if _keep:
            send_with, args, keep = noop_task.send_with, (mode,), _keep
            for _ in range(count):
                if before_each:
                    before_each()
                send_with(args, **keep)
            return
        delay = noop_task.delay
        for _ in range(count):
            if before_each:
                before_each()
            delay(mode)
        return
    for _ in range(count):
        if before_each:
            before_each()
        queue_job(data, **route)


def queue_delayed(delay: float, mode: int) -> float:
    """Queue one job due ``delay`` seconds from now; the due time (this host's clock)."""
    assert _client is not None
    due = time.time() + delay
    _client.queue_job({"m": mode}, delay=delay)
    return due


def queue_bulk(count: int) -> None:
    """Queue ``count`` jobs with the bulk API."""
    assert _client is not None
    if _tasks:
        noop_task.map([(0,)] * count, **_keep)
        return
    _client.queue_jobs(({"m": 0} for _ in range(count)), **_route)


def call_single(count: int) -> list[float]:
    """Queue a task job and wait for its result, ``count`` times; the seconds of each call."""
    call, clock = noop_task.call, time.perf_counter
    durations = []
    for _ in range(count):
        started = clock()
        value = call(bench_job.COUNT, timeout=10)
        durations.append(clock() - started)
        if value != bench_job.RESULT:
            raise SystemExit(f"noop_task.call returned {value!r}")
    return durations


def queue_kept(count: int, ttl: int) -> None:
    """Queue ``count`` task jobs in bulk, each to keep its record (and small result) ``ttl`` seconds."""
    for start in range(0, count, 10_000):
        noop_task.map([(0,)] * min(10_000, count - start), result_ttl=ttl)
