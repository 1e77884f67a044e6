"""Code that runs in each worker process: when it starts, when it stops, around each job.

::

    @qw.on_worker_start
    def connect():            # in each worker process, after the fork, before its first claim
        ...

    @qw.on_worker_stop
    def disconnect():         # in each worker process, as it leaves (not after SIGKILL)
        ...

``before_job`` and ``after_job`` hooks run around every job in the worker
(``after_job`` whether the job returned or raised); the Django integration
closes old database connections with them. Hooks are registered in the
manager process, before its workers fork, so every worker inherits them:
register them in a module the manager imports (a task module). A hook that
raises is logged and does not stop the worker or fail the job.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

log = logging.getLogger("qw.hooks")

F = TypeVar("F", bound=Callable[[], object])

_hooks: dict[str, list[Callable[[], object]]] = {"start": [], "stop": [], "before": [], "after": []}


def _register(kind: str, fn: F) -> F:
    if not callable(fn):
        raise TypeError(f"a worker hook must be callable, got {fn!r}")
    if fn not in _hooks[kind]:  # a module imported afresh on reload declares it again
        _hooks[kind].append(fn)
    return fn


def on_worker_start(fn: F) -> F:
    """Run ``fn()`` in each worker process when it starts, before it claims a job."""
    return _register("start", fn)


def on_worker_stop(fn: F) -> F:
    """Run ``fn()`` in each worker process when it stops."""
    return _register("stop", fn)


def before_job(fn: F) -> F:
    """Run ``fn()`` in the worker before each job."""
    return _register("before", fn)


def after_job(fn: F) -> F:
    """Run ``fn()`` in the worker after each job, whether it returned or raised."""
    return _register("after", fn)


def run(kind: str) -> None:
    """Call every hook of ``kind`` (``start``, ``stop``, ``before``, ``after``) in order; log failures."""
    for fn in _hooks[kind]:
        try:
            fn()
        except Exception:  # a hook must not end the worker or decide a job's outcome
            log.exception("worker hook %s (%s) failed", getattr(fn, "__qualname__", fn), kind)


def has(kind: str) -> bool:
    """True if any hook of ``kind`` is registered (plain workers pay nothing per job)."""
    return bool(_hooks[kind])
