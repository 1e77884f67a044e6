"""A task call as data, and how it is written into and read back from ``job:<id>``.

A :class:`Call` names a task (a registered name, or an import path
``pkg.mod:fn``), holds its arguments and says where the job goes. Its
arguments are encoded and checked when it is built, so a call that exists
can be sent: nothing that is not JSON ever reaches Redis, and the error
names the argument. On the wire a task job is three metadata fields of its
hash and no data fields::

    qw:task    myapp.tasks.add      (or myapp.tasks:add, an import path)
    qw:args    [4,5]                (a JSON array)
    qw:kwargs  {"when":"monday"}    (a JSON object; absent: no keyword arguments)

:func:`decode_arguments` is the worker's side of the same codec.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Optional, Protocol, Sequence, overload

from . import when
from .exceptions import ConfigError, JobDataError
from .job import json_kind
from .keeping import (
    check_on_failure,
    check_priority,
    check_result_ttl,
    check_tags,
    dependency_ids,
    record_fields,
)
from .keys import META_PREFIX, validate_manager_name, validate_queue_name
from .when import Delay, Due

TASK_FIELD = META_PREFIX + "task"
ARGS_FIELD = META_PREFIX + "args"
KWARGS_FIELD = META_PREFIX + "kwargs"

# The same JSON as job data (qw/job.py): no NaN or Infinity, which other
# languages' parsers refuse, and compact, as redis-cli shows it.
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's parser takes NaN and Infinity; a worker must not (what a producer in
# another language wrote must mean the same to every reader).
_loads = json.JSONDecoder(parse_constant=_refuse_constant).decode
_SPACE = re.compile(r"\s")


@dataclass
class Call:
    """One call of a task, ready to queue: built by ``Task.message`` or directly.

    ``task`` is a registered task name or an import path (``pkg.mod:fn``).
    ``args`` and ``kwargs`` must be JSON; a tuple anywhere in them arrives
    as a list. Where it goes: ``queue`` (a queue name; None or ``"all"`` is
    the shared ``all:jobs``), or else ``manager`` and/or ``worker`` as for
    ``Client.queue_job``; a call gives a queue or a manager/worker, not both.
    ``job_id``, ``max_attempts`` and ``timeout`` are ``queue_job``'s options;
    ``result_ttl``, ``tags`` and ``track`` say what is kept of the job
    (``qw.keeping``): a task job keeps its record unless ``result_ttl`` is 0.
    ``delay`` (seconds or a timedelta) or ``at`` (an aware datetime) queue
    it for later, as ``queue_job`` does.

    The JSON is made here, once, and :meth:`meta` returns it: treat a call
    as read-only once built (changing ``args`` would not change what is
    sent; ``dataclasses.replace`` builds a new one). It is not frozen only
    because a frozen dataclass costs a producer microseconds per call.
    """

    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: Optional[str] = None
    manager: Optional[str] = None
    worker: Optional[str] = None
    job_id: Optional[str] = None
    max_attempts: Optional[int] = None
    timeout: Optional[float] = None
    result_ttl: Optional[int] = None
    tags: tuple[str, ...] = ()
    track: bool = False
    priority: Optional[int] = None
    depends_on: tuple[str, ...] = ()
    on_dependency_failure: str = "fail"
    collect: str = ""  # "chain" or "group": takes its dependencies' results as its first argument (qw.flow)
    waiter: bool = False  # queued with one waiter counted (Task.call), who blocks at once
    delay: Optional[Delay] = None
    at: Optional[datetime] = None
    _meta: dict[str, str] = field(init=False, repr=False, compare=False)
    #: When it is due (from ``delay`` or ``at``; see :mod:`qw.when`), or None: queue it now.
    due: Optional[Due] = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        check_task_name(self.task)
        if not isinstance(self.args, (list, tuple)):
            raise TypeError(f"args of {self.task} must be a list or tuple, not {type(self.args).__name__}")
        if type(self.kwargs) is not dict and not isinstance(self.kwargs, Mapping):  # typing's check is slow
            raise TypeError(f"kwargs of {self.task} must be a dict, not {type(self.kwargs).__name__}")
        self.args = list(self.args)
        self.kwargs = dict(self.kwargs)
        self._check_options()
        meta = record_fields(self.result_ttl, self.tags, self.track, task=True, waiter=self.waiter)
        meta[TASK_FIELD] = self.task
        meta[ARGS_FIELD] = encode_args(self.task, self.args)
        if self.kwargs:
            meta[KWARGS_FIELD] = encode_kwargs(self.task, self.kwargs)
        self._meta = meta

    def _check_options(self) -> None:
        if self.queue is not None:
            validate_queue_name(self.queue)
            if self.manager is not None or self.worker is not None:
                raise ConfigError(f"a call of {self.task} goes to a queue or to a manager/worker, not both")
        if self.manager is not None:
            validate_manager_name(self.manager)
        if self.job_id is not None and (not isinstance(self.job_id, str) or not self.job_id):
            raise ConfigError(f"job_id must be a non-empty string, got {self.job_id!r}")
        check_max_attempts(self.max_attempts)
        check_timeout(self.timeout)
        if self.result_ttl is not None:
            check_result_ttl(self.result_ttl)
        if self.tags:
            self.tags = check_tags(self.tags)
        if self.depends_on:
            self.depends_on = dependency_ids(self.depends_on)
            if self.worker is not None:
                raise ConfigError(f"a call of {self.task} with dependencies goes to a queue or a manager, "
                                  "not to one worker")
        check_on_failure(self.on_dependency_failure)
        if self.priority is not None:
            check_priority(self.priority)
            if self.worker is not None and self.priority:
                raise ConfigError(f"a call of {self.task} to one worker runs in arrival order: "
                                  "it takes no priority")
        if self.delay is not None or self.at is not None:
            self.due = when.due(self.delay, self.at)
            if self.depends_on:
                raise ConfigError(f"a call of {self.task} waits for its dependencies or for a time, not both")

    def meta(self) -> dict[str, str]:
        """The ``qw:task``, ``qw:args`` and (when there are any) ``qw:kwargs`` fields, as strings."""
        return dict(self._meta)


class CallBatch(Sequence[Call]):
    """Many calls of one task with the same options and no keyword arguments: what ``Task.map`` builds.

    One object for the whole batch rather than a :class:`Call` per job
    (each job holds only its encoded arguments), so that queuing many is as
    cheap as ``queue_jobs``: ``qw.task_queuing`` reads it directly. It is
    still a sequence of calls, built on demand, for any other reader.
    """

    def __init__(self, task: str, args: list[str], *, queue: Optional[str] = None,
                 manager: Optional[str] = None, worker: Optional[str] = None,
                 max_attempts: Optional[int] = None, timeout: Optional[float] = None,
                 result_ttl: Optional[int] = None, tags: tuple[str, ...] = (), track: bool = False,
                 priority: Optional[int] = None) -> None:
        # The first call checks the name and the options for all of them.
        self._first = Call(task, [], queue=queue, manager=manager, worker=worker,
                           max_attempts=max_attempts, timeout=timeout, result_ttl=result_ttl, tags=tags,
                           track=track, priority=priority)
        self.priority = priority
        self.task = task
        self.args = args  # each a JSON array, made by encode_args
        self.queue, self.manager, self.worker = queue, manager, worker
        self.max_attempts, self.timeout = max_attempts, timeout
        self.result_ttl, self.tags, self.track = result_ttl, self._first.tags, track

    def __len__(self) -> int:
        return len(self.args)

    @overload
    def __getitem__(self, index: int) -> Call: ...

    @overload
    def __getitem__(self, index: slice) -> list[Call]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Call(self.task, _loads(self.args[index]), queue=self.queue, manager=self.manager,
                    worker=self.worker, max_attempts=self.max_attempts, timeout=self.timeout,
                    result_ttl=self.result_ttl, tags=self.tags, track=self.track, priority=self.priority)

    def record(self) -> dict[str, str]:
        """The record fields every job of the batch starts with (``qw.keeping.record_fields``)."""
        return record_fields(self.result_ttl, self.tags, self.track, task=True)


class CallQueue(Protocol):
    """What a task needs of a client: queue one call, or many in one round trip per batch.

    Each returns the job ids, in order. ``qw.Client`` provides both
    (:mod:`qw.task_queuing`): ``queue_call`` as ``queue_job`` does, with
    ``call.meta()`` as the hash's fields and ``call.queue`` naming the list
    through ``Keys.named_queue``; ``queue_calls`` as ``queue_jobs``.
    """

    def queue_call(self, call: Call) -> str: ...

    def queue_calls(self, calls: list[Call]) -> list[str]: ...


def check_task_name(name: str) -> str:
    """Return ``name`` if it can name a task in a job, else raise :class:`ConfigError`.

    A task name is a registered name (no ``:``) or an import path
    ``module:attribute``; neither may be empty or hold whitespace.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a task name must be a non-empty string, got {name!r}")
    if _SPACE.search(name):
        raise ConfigError(f"task name {name!r} must not contain whitespace")
    if ":" in name:
        module, _, attr = name.partition(":")
        if not module or not attr or ":" in attr:
            raise ConfigError(f"import path {name!r} is not of the form 'module:function'")
    return name


def check_max_attempts(value: Optional[int], what: str = "max_attempts") -> Optional[int]:
    """None, or a whole number of attempts of at least 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    if value < 1:
        raise ConfigError(f"{what} must be at least 1, got {value}")
    return value


def check_timeout(value: Optional[float], what: str = "timeout") -> Optional[float]:
    """None, or a positive, finite number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number of seconds, got {value!r}")
    if not 0 < value < math.inf:
        raise ConfigError(f"{what} must be positive, got {value}")
    return value


def encode_args(task: str, args: list[Any]) -> str:
    """``args`` as a JSON array; :class:`JobDataError` names the first argument that is not JSON."""
    try:
        return _dumps(args)
    except (TypeError, ValueError):
        pass  # find which argument, and why, before saying so
    for i, value in enumerate(args, 1):
        reason = why_not_json(value)
        if reason:
            raise JobDataError(f"argument {i} of {task} is not JSON: {reason}") from None
    raise JobDataError(f"the arguments of {task} are not JSON")  # pragma: no cover - why_not_json found none


def encode_kwargs(task: str, kwargs: dict[str, Any]) -> str:
    """``kwargs`` as a JSON object; :class:`JobDataError` names the first one that is not JSON."""
    for key in kwargs:
        if not isinstance(key, str):
            raise JobDataError(f"keyword argument names of {task} must be strings, got {key!r}")
    try:
        return _dumps(kwargs)
    except (TypeError, ValueError):
        pass
    for key, value in kwargs.items():
        reason = why_not_json(value)
        if reason:
            raise JobDataError(f"keyword argument {key!r} of {task} is not JSON: {reason}") from None
    raise JobDataError(f"the keyword arguments of {task} are not JSON")  # pragma: no cover


def why_not_json(value: Any) -> str:
    """What in ``value`` JSON cannot hold (``set``, ``datetime``, ``NaN``, ...); ``""`` if nothing.

    Only called once encoding failed, so it may take its time.
    """
    stack: list[tuple[Any, tuple[int, ...]]] = [(value, ())]
    while stack:
        item, parents = stack.pop()
        if item is None or isinstance(item, (str, bool, int)):
            continue
        if isinstance(item, float):
            if math.isnan(item):
                return "NaN"
            if math.isinf(item):
                return "Infinity" if item > 0 else "-Infinity"
            continue
        if not isinstance(item, (list, tuple, dict)):
            return type(item).__name__
        if id(item) in parents:
            return "a circular reference"
        inner = (*parents, id(item))
        if isinstance(item, dict):
            for key in item:
                if not (key is None or isinstance(key, (str, int, float))):
                    return f"a {type(key).__name__} as a dict key"
            stack.extend((v, inner) for v in item.values())
        else:
            stack.extend((v, inner) for v in item)
    return ""


#: The task name of a joined job (``qw.flow``): its arguments are the calls it
#: runs in sequence, each ``[task, args, kwargs]``.
JOINED_TASK = "qw.joined"


def collected(meta: Mapping[str, str]) -> Any:
    """What a job that takes its dependencies' results gets first: the one result (a chain's step)
    or the list of them in dependency order (a group's callback); None for one that failed."""
    dependencies = _loads(meta.get("qw:depends_on") or "[]")
    values = [_loads(meta.get(f"qw:input:{dep}") or "null") for dep in dependencies]
    if meta.get("qw:collect") == "chain":
        return values[0] if values else None
    return values


def decode_arguments(meta: Mapping[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """A task job's ``(args, kwargs)`` from its metadata; :class:`JobDataError` says what is wrong.

    A missing ``qw:args`` means no positional arguments, as a missing
    ``qw:kwargs`` means no keyword arguments (a plain producer may leave
    both out).
    """
    args = _field(meta, ARGS_FIELD, list, "array")
    kwargs = _field(meta, KWARGS_FIELD, dict, "object")
    return (args if args is not None else []), (kwargs if kwargs is not None else {})


def _field(meta: Mapping[str, str], name: str, kind: type, kind_name: str) -> Any:
    text = meta.get(name)
    if text is None:
        return None
    try:
        value = _loads(text)
    except ValueError as exc:
        raise JobDataError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        found = "an object" if isinstance(value, dict) else json_kind(value)
        raise JobDataError(f"{name} must be a JSON {kind_name}, not {found}")
    return value
