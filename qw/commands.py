"""Carry out what a manager is asked: resize, reload, pause, resume, stop, re-execute.

Requests come from signal handlers, from other threads (``Manager.request``)
and from Redis (the control inbox); all of them only append a
:class:`~qw.control.Command` to :attr:`Commands.requests`. The supervising
loop calls :meth:`Commands.handle_pending`, so everything that changes the
pool happens in that loop, one request at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections import deque
from typing import Any, Callable, Optional

from .control import Command, Inbox
from .exceptions import QwError
from .guard import Guard
from .lifecycle import Lifecycle
from .loading import load_code
from .options import RELOADABLE, Settings
from .periodic import publish as publish_schedules
from .pool import Pool
from .process import Switch, cancel_digest
from .target import CodeTracker

log = logging.getLogger("qw.manager")

LOCAL = "this process"  # the sender of requests made in the manager's own process
Outcome = tuple[bool, str, dict[str, Any]]


class Commands:
    """The manager's pending requests and how each is carried out."""

    def __init__(self, pool: Pool, settings: Settings, paused: Switch, lifecycle: Lifecycle,
                 code: CodeTracker, inbox: Inbox, guard: Guard,
                 options_source: Optional[Callable[[], dict[str, Any]]]) -> None:
        self.pool = pool
        self.settings = settings
        self.paused = paused
        self.lifecycle = lifecycle
        self.code = code
        self.inbox = inbox
        self.guard = guard
        self.options_source = options_source
        # The options as given at start, then as options_source gave them last.
        self.last_read: dict[str, Any] = {name: settings.given[name] for name in RELOADABLE}
        self.requests: deque[Command] = deque()
        self.after_each: Callable[[], None] = lambda: None  # refresh the title and the health

    def request(self, op: str, **args: Any) -> None:
        """Queue a request of this process (safe in a signal handler and from other threads)."""
        self.requests.append(Command(op, args, sender=LOCAL))
        self.lifecycle.waker.wake()

    def handle_pending(self) -> None:
        while self.requests:
            command = self.requests.popleft()
            try:
                ok, message, details = self.carry_out(command)
            except QwError as exc:
                ok, message, details = False, str(exc), {}
            except Exception as exc:  # a bad command must not take the manager down
                log.exception("manager %s: %s failed", self.pool.name, command.op)
                ok, message, details = False, f"{type(exc).__name__}: {exc}", {}
            (log.info if ok else log.error)("manager %s: %s (%s, from %s)", self.pool.name, message,
                                           command.op, command.sender)
            if command.sender != LOCAL:
                self.guard(self.inbox.answer, command, ok, message, **details)
            self.after_each()

    def carry_out(self, command: Command) -> Outcome:
        op, args = command.op, command.args
        if op in ("scale", "expand", "contract"):
            return self._scale(op, args.get("n"))
        if op == "reload":
            return self._reload()
        if op in ("pause", "resume"):
            return self._pause(op == "pause")
        if op == "stop":
            self.lifecycle.request_stop()
            return True, f"stopping: {self.pool.active_count()} worker(s) finish their job, then leave", {}
        if op == "cancel":
            return self._cancel(str(args.get("job", "")), str(args.get("worker", "")))
        if op == "reexec":
            self.lifecycle.reexec = True
            self.lifecycle.request_stop()
            return True, "stopping, to execute again on new code under the same name", {}
        return False, f"unknown command {op!r}", {}

    def _cancel(self, job_id: str, worker: str) -> Outcome:
        # The worker raises in that job only if it is still the one it runs
        # (or, held in a prefetch, before it starts it): see Worker._on_cancel.
        for slot in self.pool.slots.values():
            process = slot.process
            if process.name == worker and process.is_alive() and process.pid:
                process.shared.cancel.value = cancel_digest(job_id)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGUSR1)
                return True, f"cancelling job {job_id} on {worker}", {"job": job_id}
        return False, f"job {job_id}: worker {worker!r} is not running here", {"job": job_id}

    def _scale(self, op: str, n: Any) -> Outcome:
        before = self.pool.active_count()
        if op == "scale":
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                return False, f"scale needs a whole number of workers of at least 1, got {n!r}", {}
        else:
            n = max(1, before + (1 if op == "expand" else -1))
        self.settings.num_workers = n
        self.pool.scale_to(n)
        return True, f"workers {before} -> {n}", {"before": before, "after": n}

    def _pause(self, on: bool) -> Outcome:
        was = bool(self.paused)
        self.paused.set(on)
        if on:
            self._wait_for_idle_workers_to_hold()
        state = "paused" if on else "claiming"
        changed = "now" if was != on else "already"
        return True, f"{changed} {state}", {"paused": on}

    def _wait_for_idle_workers_to_hold(self, timeout: float = 2.0) -> None:
        # An idle worker may have a wait-and-claim in flight: the answer to
        # "pause" waits until none has, so no job queued after it is claimed.
        # Busy workers look at the flag before their next claim.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shared = [slot.process.shared for slot in self.pool.slots.values() if slot.process.is_alive()]
            if all(s.holding.value or s.started.value for s in shared):
                return
            time.sleep(0.005)

    def _reload(self) -> Outcome:
        current = self.settings.reloadable()
        fresh, changed = dict(current), []
        options = self.options_source() if self.options_source is not None else None
        if options is not None:
            fresh, changed = self._fresh_options(options, current)
        prepared = self.settings.prepare(fresh)
        # The new code is imported in the manager first: the fork gives every
        # new worker that code, and an import error leaves the old pool alone.
        _function, prepared["task_map"] = self.code.reload_with(load_code, prepared["target"],
                                                                prepared["tasks"] or ())
        self.settings.apply(prepared)
        # A periodic task added or changed by the new code: its schedule too.
        self.guard.step("schedules", publish_schedules, self.inbox.store, self.settings.task_map,
                        self.inbox.manager)
        if options is not None:
            self.last_read = options
        old = self.pool.replace_all()
        message = (f"reloaded: {self.settings.num_workers} worker(s) on freshly imported code; "
                   f"{old} old one(s) finish their job and leave")
        if changed:
            message += f"; changed: {', '.join(changed)}"
        return True, message, {"changed": changed, "after": self.settings.num_workers}

    def _fresh_options(self, options: dict[str, Any], current: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                         list[str]]:
        # An option the file (or command line) did not change since the last
        # read keeps its present value: a pool resized at run time stays that
        # size across a reload of new code.
        last = self.last_read
        fresh = {name: options[name] if name in options and options[name] != last.get(name) else value
                 for name, value in current.items()}
        changed = [name for name in RELOADABLE if fresh[name] != current[name]]
        for name, value in self.settings.fixed().items():
            if name in options and options[name] != value:
                log.warning("manager %s: %s changed in the configuration; it takes effect only on a "
                            "restart (USR2)", self.pool.name, name)
        return fresh, changed
