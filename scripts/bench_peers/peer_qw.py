"""qw, from the current checkout: a ``qw-manager`` process with N workers.

Variants (``--variant``) choose where single jobs are queued, for the latency
run: ``all`` (``all:jobs``, which idle workers wait on with BLMOVE),
``manager`` (``bench:jobs``, polled in 50 ms slices) or ``worker`` (the
first worker's own list, ``bench:1:jobs``); ``prefetch`` runs the workers
with ``--prefetch`` PREFETCH. ``task`` runs the same no-op as a task
(``noop_task.delay`` to queue one, ``noop_task.map`` in bulk, the manager
started on this module), and ``task-prefetch`` does so with the prefetch.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

import bench_job

import qw
from qw import Client
from qw.tasks import set_default_client

PACKAGES: list[str] = []  # runs in the interpreter running the bench: this checkout's qw
VERSIONS = ["qw", "redis", "hiredis"]
MANAGER = "bench"
HAS_BULK = True
WORKER_CONFIG = "qw-manager --workers N"
SINGLE_API = "Client.queue_job"
BULK_API = "Client.queue_jobs (batches of 1000 jobs per round trip)"

PREFETCH = 10
_client: Optional[Client] = None
_route: dict[str, str] = {}
_worker_options: list[str] = []
_code = ["peer_qw:noop"]
_tasks = False


def noop(job_id: str, job_data: dict) -> None:
    """The target: report that the job ran."""
    bench_job.ran(job_data["m"])


@qw.task
def noop_task(mode: int) -> None:
    """The same job as a task: its only argument is the mode."""
    bench_job.ran(mode)


def setup(host: str, port: int, variant: str) -> None:
    """Connect the producer."""
    global _client, _tasks
    _client = Client(host, port)
    _client.ping()
    if variant.startswith("task"):
        set_default_client(_client)
        _code[:] = ["peer_qw"]  # a module of tasks: the manager runs noop_task
        _tasks = True
        if variant == "task-prefetch":
            _worker_options[:] = ["--prefetch", str(PREFETCH)]
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
        noop_task.map([(0,)] * count)
        return
    _client.queue_jobs(({"m": 0} for _ in range(count)), **_route)
