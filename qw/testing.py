"""Immediate mode: tasks run inline, in the caller, with no Redis (tests, local development).

::

    with qw.testing.immediate():
        handle = add.delay(4, 5)      # add(4, 5) ran here, now
        handle.result()               # 9
        handle.state                  # "done"
        add.call(4, 5)                # 9

Inside the block every ``delay``, ``send_with``, ``fire_at``, ``map`` and
``call`` that queues through the default client runs the task at once
instead. ``delay`` returns an :class:`ImmediateHandle`: ``id``, ``state``
(``done`` or ``failed``), ``attempts``, ``result(timeout=None)`` (the value,
or the task's exception raised again) and ``info()``. Arguments go through
JSON as they would through Redis, so a call that could not be queued fails
here too. A task that raises :class:`qw.Retry` runs again at once (no
waiting for the delay) until it returns or has used its ``max_attempts``
(the task's, else 3, the manager's default); any other exception, or
:class:`qw.Abort`, fails it at once. A failure is raised from ``delay``
itself (``propagate=False``: only from ``handle.result()``), so a test sees
the task's own exception and traceback. Jobs sent to a worker or manager,
or with a delay, run at once like any other call; a job that depends on
others runs after them (they ran when queued), and chains and groups
(:mod:`qw.flow`) pass results on as they do through Redis.

``immediate()`` swaps the process-wide default client (:mod:`qw.defaults`)
for an :class:`ImmediateClient` and puts the old one back on leaving; the
Django integration does the same for ``QW["IMMEDIATE"] = True``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

from . import defaults
from .call import Call
from .exceptions import JobFailed, JobNotFound, QwError, Retry

DEFAULT_MAX_ATTEMPTS = 3  # the manager's --max-attempts default


@dataclass
class ImmediateInfo:
    """What an immediate job's record holds: its task, arguments, state, result or error, attempts."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    state: str = "queued"
    result: Any = None
    error: Optional[BaseException] = None
    attempts: int = 0
    tags: tuple[str, ...] = field(default=())


class ImmediateHandle:
    """The handle ``delay`` returns in immediate mode: the job has already run."""

    __slots__ = ("id", "client")

    def __init__(self, id: str, client: ImmediateClient) -> None:
        self.id = id
        self.client = client

    def __repr__(self) -> str:
        return f"ImmediateHandle({self.id!r})"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImmediateHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> ImmediateInfo:
        """The job's record (:class:`ImmediateInfo`)."""
        return self.client.info(self.id)

    @property
    def state(self) -> str:
        """``done`` or ``failed``."""
        return self.info().state

    @property
    def attempts(self) -> int:
        """How many times the task ran."""
        return self.info().attempts

    def result(self, timeout: Optional[float] = None) -> Any:
        """The task's return value; its exception raised again if it failed (``timeout`` is ignored)."""
        info = self.info()
        if info.error is not None:
            raise info.error
        return info.result

    def _result(self, timeout: Optional[float], registered: bool) -> Any:  # what Task.call uses
        return self.result(timeout)

    def cancel(self) -> bool:
        """False: the job has already run."""
        return False


class ImmediateClient:
    """A stand-in for :class:`qw.Client` that runs each queued call at once, here.

    ``propagate``: raise a failed task's exception from ``delay`` (True) or
    only from ``handle.result()`` (False). ``jobs`` holds every job's
    :class:`ImmediateInfo` by id, in the order they ran.
    """

    def __init__(self, propagate: bool = True) -> None:
        self.propagate = propagate
        self.jobs: dict[str, ImmediateInfo] = {}

    def queue_call(self, call: Call) -> str:
        """Run ``call`` now; return its job id."""
        from .tasks import registry  # at call time: qw.tasks imports this module's users

        job_id = call.job_id or os.urandom(16).hex()
        if job_id in self.jobs:  # as in Redis: queuing an id that exists does nothing
            return job_id
        task = registry.get(call.task)
        if task is None:
            raise QwError(f"no task named {call.task!r} is registered in this process")
        args, kwargs = json.loads(json.dumps(list(call.args))), json.loads(json.dumps(dict(call.kwargs)))
        info = self.jobs[job_id] = ImmediateInfo(job_id, call.task, args, kwargs, tags=tuple(call.tags))
        failed = [d for d in call.depends_on if d in self.jobs and self.jobs[d].state == "failed"]
        if failed and call.on_dependency_failure == "fail":
            cause = self.jobs[failed[0]].error
            self._failed(info, JobFailed(job_id, f"dependency {failed[0]} failed: {cause!r}"))
            return job_id
        if call.collect:  # a chain's step takes the last result first; a group's callback, the list of them
            values = [self.jobs[d].result if d in self.jobs else None for d in call.depends_on]
            args = [values[0] if call.collect == "chain" and values else values, *args]
        limit = call.max_attempts or task.max_attempts or DEFAULT_MAX_ATTEMPTS
        while True:
            info.attempts += 1
            info.state = "running"
            try:
                info.result = json.loads(json.dumps(task.fn(*args, **kwargs)))
            except Retry as exc:
                if info.attempts < limit:
                    continue
                self._failed(info, exc)
            except (Exception, SystemExit) as exc:  # Abort too: it fails the job for good
                self._failed(info, exc)
            else:
                info.state = "done"
            return job_id

    def _failed(self, info: ImmediateInfo, exc: BaseException) -> None:
        info.state, info.error = "failed", exc
        if self.propagate:
            raise exc

    def queue_calls(self, calls: Iterable[Call], batch_size: int = 0) -> list[str]:
        """Run each call now, in order; return their ids."""
        return [self.queue_call(call) for call in calls]

    def make_handle(self, job_id: str) -> ImmediateHandle:
        """The handle ``delay`` returns for ``job_id``."""
        return ImmediateHandle(job_id, self)

    def info(self, job_id: str) -> ImmediateInfo:
        """The record of ``job_id``; :class:`qw.JobNotFound` if it never ran here."""
        try:
            return self.jobs[job_id]
        except KeyError:
            raise JobNotFound(f"job {job_id} has no record") from None


@contextlib.contextmanager
def immediate(propagate: bool = True) -> Iterator[ImmediateClient]:
    """Run every task queued through the default client inline while the block lasts."""
    before = defaults.peek_default_client()
    client = ImmediateClient(propagate)
    defaults.set_default_client(client)
    try:
        yield client
    finally:
        defaults.set_default_client(before)
