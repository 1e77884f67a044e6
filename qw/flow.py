"""Chains, groups and joined jobs, built on dependencies: ``task.s()``, ``qw.chain``, ``qw.group``, ``&``.

A :class:`Signature` is a call not yet queued. Queuing a chain queues its
steps at once, each depending on the one before and taking its result as
its first argument; a group's members run in parallel and a callback
(``group(...).then(sig)``) depends on them all and gets their results, in
order, as its first argument. Results are copied into the dependent job in
the step that settles each dependency (``qw/lua/lib/flow.lua``), so they
are there when it runs, whatever the members' ``result_ttl``. A failure
stops what depends on it (``on_dependency_failure``, as for any dependency).

A joined job (``a.s() & b.s("Ian")``) is one job that runs the calls in
sequence, in one worker, each resolved under the manager's rules; its
result is the list of theirs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterable, Optional, Sequence

from .call import JOINED_TASK, Call
from .defaults import default_client
from .exceptions import ConfigError
from .handle import JobHandle, handle_for, wait
from .keeping import dependency_ids


class Signature:
    """A call of ``task`` with its arguments and ``send_with`` options, not yet queued.

    ``task`` is a :class:`~qw.tasks.Task` or a task name / import path.
    ``options(**options)`` returns a copy with more options; ``delay()``
    queues it as ``task.send_with`` would.
    """

    def __init__(self, task: Any, args: Sequence[Any] = (), kwargs: Optional[dict[str, Any]] = None,
                 options: Optional[dict[str, Any]] = None) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self._options = dict(options or {})
        self.call(leading=None)  # check the arguments and options now (the fit once its place is known)

    @property
    def name(self) -> str:
        return self.task if isinstance(self.task, str) else self.task.name

    def options(self, **options: Any) -> Signature:
        """The same call with these ``send_with`` options added."""
        return Signature(self.task, self.args, self.kwargs, {**self._options, **options})

    def call(self, leading: Optional[int] = 0, **extra: Any) -> Call:
        """The :class:`~qw.call.Call` it queues as (``extra``: depends_on and the like); ``leading``:
        arguments it gets before its own (1 in a chain or as a callback; None: not known yet)."""
        if leading == 0 and extra.get("collect"):
            leading = 1
        options = {k: v for k, v in self._options.items() if k != "client"}
        flow = {k: options.pop(k) for k in ("depends_on", "on_dependency_failure") if k in options}
        flow.update(extra)
        if isinstance(self.task, str):
            call = Call(self.task, list(self.args), self.kwargs, **options)
        else:
            call = self.task._call(self.args, self.kwargs, leading=leading, **options)
        if flow:
            if "depends_on" in flow:
                flow["depends_on"] = dependency_ids(flow["depends_on"])
            call = dataclasses.replace(call, **flow)
        return call

    def delay(self, client: Any = None) -> JobHandle:
        """Queue it; its handle."""
        return _queue(self.call(), client or self._options.get("client"), self.task)

    def __and__(self, other: Signature | Joined) -> Joined:
        return Joined([self]) & other

    def __repr__(self) -> str:
        return f"<Signature {self.name}{self.args!r}>"


class Joined:
    """Calls run in sequence by one worker as one job (``a.s() & b.s()``); its result: theirs, in order."""

    def __init__(self, parts: Sequence[Signature]) -> None:
        self.parts = list(parts)

    def __and__(self, other: Signature | Joined) -> Joined:
        more = other.parts if isinstance(other, Joined) else [other]
        return Joined([*self.parts, *more])

    def delay(self, client: Any = None, **options: Any) -> JobHandle:
        """Queue the joined job (``options``: those of ``send_with``, for the one job)."""
        if not self.parts:
            raise ConfigError("a joined job needs at least one call")
        parts = [[p.name, list(p.args), p.kwargs] for p in self.parts]
        call = Call(JOINED_TASK, [parts], {}, **options)
        return _queue(call, client, None)


class Chain:
    """Steps that run one after the other, each given the result of the one before as its first argument."""

    def __init__(self, steps: Sequence[Signature]) -> None:
        if not steps:
            raise ConfigError("a chain needs at least one step")
        self.steps = list(steps)

    def delay(self, client: Any = None) -> JobHandle:
        """Queue every step now; the handle of the last (its result is the chain's)."""
        handle = self.steps[0].delay(client)
        for step in self.steps[1:]:
            handle = _queue(step.call(depends_on=(handle.id,), collect="chain"), client or handle.client,
                            step.task)
        return handle


class Group:
    """Calls that run in parallel; ``then(sig)`` adds a callback that gets all their results."""

    def __init__(self, members: Iterable[Signature]) -> None:
        self.members = list(members)
        if not self.members:
            raise ConfigError("a group needs at least one member")

    def then(self, callback: Signature) -> Chord:
        """The group with ``callback``, run once every member succeeded, given their results in order."""
        return Chord(self, callback)

    def delay(self, client: Any = None) -> GroupHandle:
        """Queue every member; a :class:`GroupHandle`."""
        return GroupHandle([member.delay(client) for member in self.members])


class Chord:
    """A group and its callback."""

    def __init__(self, group: Group, callback: Signature) -> None:
        self.group, self.callback = group, callback

    def delay(self, client: Any = None) -> JobHandle:
        """Queue the members and the callback; the callback's handle (``self.members``: the members')."""
        self.members = self.group.delay(client)
        return _queue(self.callback.call(depends_on=tuple(self.members.ids), collect="group"),
                      client or self.members.handles[0].client, self.callback.task)


class GroupHandle:
    """The jobs of a group: ``results(timeout)`` in order, ``state`` of the whole."""

    def __init__(self, handles: list[JobHandle]) -> None:
        self.handles = handles

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.handles]

    def results(self, timeout: Optional[float] = None) -> list[Any]:
        """Wait until every member settled (one wait in Redis); their results in order.

        Raises the first failure (:class:`~qw.exceptions.JobFailed`, ``JobCancelled``) in member order.
        """
        wait(self.handles, timeout)
        return [h.result(timeout=0) for h in self.handles]

    @property
    def state(self) -> str:
        """"done" when all are done; "failed" or "cancelled" when one is; else the earliest state of any."""
        states = [h.state for h in self.handles]
        for settled in ("failed", "cancelled"):
            if settled in states:
                return settled
        if all(s == "done" for s in states):
            return "done"
        order = ("waiting", "scheduled", "queued", "retrying", "running")
        return min((s for s in states if s in order), key=order.index, default="running")


def chain(*steps: Signature) -> Chain:
    """``qw.chain(a.s(), b.s(), c.s())``: see :class:`Chain`."""
    return Chain(steps)


def group(members: Iterable[Signature]) -> Group:
    """``qw.group(resize.s(p) for p in paths)``: see :class:`Group`."""
    return Group(members)


def _queue(call: Call, client: Any, task: Any) -> JobHandle:
    if client is None:
        client = default_client()
    handle = handle_for(client, client.queue_call(call))
    if task is not None and not isinstance(task, str):
        task.last = handle
    return handle



class TimeScheduler:
    """A recurring joined job: the calls given with ``<<`` run in sequence, in one job, every ``every``.

    ::

        with qw.TimeScheduler(client, timedelta(hours=3)) as s:
            s << job1
            s << job2
            s.flush()          # or at the end of the with block

    It defines a schedule (``client.recur``) named ``name`` (default: from
    the calls, so the same calls define the same schedule) that queues the
    joined job; ``offset``, ``catchup`` and ``queue`` are those of
    ``client.recur``. ``flush()`` returns what ``recur`` does ("created",
    "replaced" or "unchanged").
    """

    def __init__(self, client: Any, every: Any, *, name: Optional[str] = None, offset: Any = 0,
                 catchup: str = "skip", queue: Optional[str] = None) -> None:
        self.client, self.every, self.name = client, every, name
        self.offset, self.catchup, self.queue = offset, catchup, queue
        self.parts: list[Signature] = []
        self.flushed: Optional[str] = None

    def __lshift__(self, call: Signature | Joined) -> TimeScheduler:
        self.parts += call.parts if isinstance(call, Joined) else [call]
        return self

    def flush(self) -> str:
        """Define (or replace) the schedule now."""
        if not self.parts:
            raise ConfigError("a TimeScheduler needs at least one call (scheduler << task.s(...))")
        parts = [[p.name, list(p.args), p.kwargs] for p in self.parts]
        digest = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
        name = self.name or f"joined-{digest}"
        self.flushed = self.client.recur(name, task=JOINED_TASK, args=[parts], every=self.every,
                                         offset=self.offset, catchup=self.catchup, queue=self.queue)
        self.name = name
        return self.flushed

    def __enter__(self) -> TimeScheduler:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None and self.flushed is None:
            self.flush()
