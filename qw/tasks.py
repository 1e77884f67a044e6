"""Tasks: plain functions (or :class:`Job` classes) that workers run by name.

A :class:`Task` is a thin wrapper around the function: it holds the
function, its name, its queue and options. Calling it runs the function
here; :meth:`Task.delay` queues a job that a worker runs instead::

    @qw.task                                    # named "<module>.<qualname>"
    def add(a, b):
        return a + b

    @qw.task(name="mail.send", queue="emails", max_attempts=5, timeout=30)
    def send_mail(to, subject, body=""): ...

    add(4, 5)                 # 9, in this process
    add.delay(4, 5)           # a JobHandle; a worker runs add(4, 5)

Every task lands in :data:`registry` when it is declared, under a name that
must be unique in the process. A worker runs only tasks of the modules its
manager loaded (see :mod:`qw.loading` and :mod:`qw.dispatch`): job data
makes it import nothing but modules the manager's ``--allow`` patterns match.

Queuing goes through one narrow interface (:class:`qw.call.CallQueue`):
``client.queue_call(call)`` and ``client.queue_calls(calls)``. The client is
the ``client=`` argument, else the process-wide default
(:func:`set_default_client`, else a ``qw.Client()`` made on first use from
``$QW_REDIS_URL``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import time
from datetime import datetime
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterable, Mapping, Optional, Sequence, overload

from .call import Call, CallBatch, CallQueue, check_max_attempts, check_timeout, encode_args
from .defaults import default_client, set_default_client  # noqa: F401 - importable from here, as before
from .exceptions import ConfigError
from .flow import Signature
from .handle import JobHandle, handle_for
from .keeping import check_priority, check_result_ttl, check_tags, dependency_ids
from .keys import validate_queue_name, validate_task_name
from .waiting import first_block
from .when import Delay

#: Every task declared in this process, by name.
registry: dict[str, Task] = {}


def check_registered_name(name: Any) -> str:
    """A name a task may be registered under: non-empty, no ``:`` (that marks an import path), no spaces."""
    return validate_task_name(name)  # the rule lives with the key names: a task name goes in stats keys


# The options a task may declare, each once, with the check its value must
# pass. Later features (result_ttl, priority, ...) add a row here.
OPTIONS: Mapping[str, Callable[[Any], Any]] = MappingProxyType({
    "name": check_registered_name,
    "queue": validate_queue_name,
    "max_attempts": check_max_attempts,
    "timeout": check_timeout,
    "result_ttl": check_result_ttl,
    "tags": check_tags,
    "priority": check_priority,
})


def check_options(options: Mapping[str, Any], place: str) -> dict[str, Any]:
    """``options`` if every one is known and valid, else one-line :class:`ConfigError` saying where."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise ConfigError(f"unknown task option{'s' if len(unknown) > 1 else ''} {listed} at {place}; "
                          f"allowed: {', '.join(sorted(OPTIONS))}")
    for name, value in options.items():
        if value is not None:
            try:
                OPTIONS[name](value)
            except ConfigError as exc:
                raise ConfigError(f"task option {name}: {exc} (at {place})") from None
    return {name: value for name, value in options.items() if value is not None}


class Task:
    """A function that workers run by name, with its options.

    ``fn`` is the function, ``name`` its registered name (default
    ``<module>.<qualname>``), ``queue`` the queue its jobs go to (None: the
    shared ``all:jobs``), ``max_attempts`` and ``timeout`` the job limits
    (None: the manager's defaults), ``options`` every option as declared
    (read-only). ``place`` is where it was declared (``file:line``).
    ``job_class`` is the :class:`Job` subclass it runs, if any.

    Made by :func:`task` or a :class:`Job` subclass, which check the
    options and register it; constructing one directly does neither.
    """

    def __init__(self, fn: Callable[..., Any], options: Mapping[str, Any] = MappingProxyType({}), *,
                 place: str = "", job_class: Optional[type] = None) -> None:
        functools.update_wrapper(self, fn)  # __name__, __doc__, __module__, __qualname__, __wrapped__
        self.fn = fn
        self.options: Mapping[str, Any] = MappingProxyType(dict(options))
        self.module: str = fn.__module__
        self.name: str = options.get("name") or f"{self.module}.{fn.__qualname__}"
        self.queue: Optional[str] = options.get("queue")
        self.max_attempts: Optional[int] = options.get("max_attempts")
        self.timeout: Optional[float] = options.get("timeout")
        self.result_ttl: Optional[int] = options.get("result_ttl")
        self.tags: tuple[str, ...] = check_tags(options.get("tags"))
        self.priority: Optional[int] = options.get("priority")
        self.place = place
        self.last: Optional[JobHandle] = None  # the last job this process queued through the task
        self.job_class = job_class
        # The module object it was declared in: a manager that imports the
        # module afresh (reload) makes this declaration stale, not a duplicate.
        self.home = sys.modules.get(self.module)
        self._fit: Optional[_Fit] = None

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __reduce__(self) -> Any:
        # Pickled by reference, as functions are: the module attribute it is.
        if self.job_class is not None:
            return (getattr, (self.job_class, "__task__"))
        return self.__qualname__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here, now, as a plain call."""
        return self.fn(*args, **kwargs)

    @property
    def live(self) -> bool:
        """False once the module that declared it has been imported afresh."""
        return self.home is None or sys.modules.get(self.module) is self.home

    def message(self, *args: Any, **kwargs: Any) -> Call:
        """The :class:`Call` that :meth:`delay` would queue, without queuing it."""
        return self._call(args, kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature: this call, not yet queued, for ``qw.chain``, ``qw.group`` and ``&``
        (``.options(...)`` adds ``send_with`` options)."""
        return Signature(self, args, kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> JobHandle:
        """Queue ``fn(*args, **kwargs)`` with the task's options; return its handle."""
        return self.send_with(args, kwargs)

    fire = delay

    def fire_at(self, delay: Delay, *args: Any, **kwargs: Any) -> JobHandle:
        """Queue ``fn(*args, **kwargs)`` to run after ``delay`` (a timedelta or seconds)."""
        return self.send_with(args, kwargs, delay=delay)

    def send_with(
        self,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        *,
        queue: Optional[str] = None,
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        job_id: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        result_ttl: Optional[int] = None,
        tags: Optional[Iterable[str]] = None,
        track: bool = False,
        priority: Optional[int] = None,
        depends_on: Optional[Iterable[Any]] = None,
        on_dependency_failure: str = "fail",
        delay: Optional[Delay] = None,
        at: Optional[datetime] = None,
        client: Optional[CallQueue] = None,
    ) -> JobHandle:
        """Queue one call with every option; options left None take the task's.

        ``queue`` overrides the task's queue; ``manager`` or ``worker``
        send the job to that manager's or worker's own list instead (then
        the task's queue does not apply, and giving ``queue`` too is an
        error). ``job_id``, ``max_attempts``, ``timeout``, ``delay``
        (seconds or a timedelta), ``at`` (an aware datetime): as for
        ``Client.queue_job``. ``result_ttl``: seconds the job's record (its
        state, result, history) stays once it settles (None: the task's, else
        the manager's ``--result-ttl``; 0: none); ``tags`` add to the task's;
        ``track`` keeps the record until untracked; ``priority`` orders it
        in its queue (lower sooner; None: the task's, else 0);
        ``depends_on`` (handles or ids) makes it wait until each is done, and
        ``on_dependency_failure`` says what one that fails does to it
        (``"fail"``: it fails too; ``"run"``: it runs all the same). Bad
        arguments raise before anything is sent.
        """
        call = self._call(args, kwargs or {}, queue=queue, manager=manager, worker=worker, job_id=job_id,
                          max_attempts=max_attempts, timeout=timeout, result_ttl=result_ttl, tags=tags,
                          track=track, priority=priority, delay=delay, at=at)
        if depends_on is not None or on_dependency_failure != "fail":
            call = dataclasses.replace(call, depends_on=dependency_ids(depends_on),
                                       on_dependency_failure=on_dependency_failure)
        sender = _client(client)
        handle = self.last = handle_for(sender, sender.queue_call(call))
        return handle

    def delay_now(self, *args: Any, **kwargs: Any) -> JobHandle:
        """As :meth:`delay`, but queued at once even where the default client defers (Django's
        ``COMMIT_MODE="on_commit"`` inside a transaction)."""
        sender = _client(None)
        return self.send_with(args, kwargs, client=getattr(sender, "at_once", sender))

    def call(self, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """Queue ``fn(*args, **kwargs)`` and wait for its result (``timeout``: seconds to wait).

        As ``self.delay(*args, **kwargs).result(timeout)``: raises what
        :meth:`JobHandle.result` raises. ``timeout`` is the wait's, not the
        job's time limit (``send_with(timeout=...)`` sets that).
        """
        call = self._call(args, kwargs, waiter=True)  # built once: its JSON is made in the constructor
        sender = _client(client=None)
        sender = getattr(sender, "at_once", sender)  # a caller who waits cannot wait for a commit
        both = getattr(sender, "queue_call_and_wait", None)
        if both is None:  # immediate mode, or another CallQueue
            handle = self.last = handle_for(sender, sender.queue_call(call))
            return handle._result(timeout, registered=True)  # counted as its waiter when queued: block now
        # Queued, and the first wait for it sent in the same write: one round trip.
        began = time.monotonic()
        job_id, popped = both(call, first_block(timeout))
        handle = self.last = handle_for(sender, job_id)
        return handle._result(timeout, registered=True, popped=popped, began=began)

    @property
    def result(self) -> Any:
        """The result of the last job this process queued through the task, if done; else None."""
        if self.last is None:
            return None
        info = self.last.info()
        return info.result if info.state == "done" else None

    @property
    def state(self) -> Optional[str]:
        """The state of the last job this process queued through the task (None: none yet)."""
        return None if self.last is None else self.last.state

    def map(
        self,
        items: Iterable[Sequence[Any]],
        *,
        queue: Optional[str] = None,
        manager: Optional[str] = None,
        worker: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        result_ttl: Optional[int] = None,
        tags: Optional[Iterable[str]] = None,
        track: bool = False,
        priority: Optional[int] = None,
        client: Optional[CallQueue] = None,
    ) -> list[JobHandle]:
        """Queue one job per item, each item a tuple (or list) of positional arguments.

        All calls are built (and checked) first, then handed to the client
        in one ``queue_calls``, which sends one round trip per batch: bad
        arguments anywhere queue nothing. Returns the handles in order.
        """
        encoded = []
        name = self.name
        for i, item in enumerate(items):
            if not isinstance(item, (tuple, list)):
                raise TypeError(f"{name}.map takes a tuple of arguments per job; item {i} is a "
                                f"{type(item).__name__}")
            self._check_fits(item, {})
            encoded.append(encode_args(name, item))
        if not encoded:
            return []
        if queue is None and manager is None and worker is None:
            queue = self.queue
        calls = CallBatch(name, encoded, queue=queue, manager=manager, worker=worker,
                          max_attempts=self.max_attempts if max_attempts is None else max_attempts,
                          timeout=self.timeout if timeout is None else timeout,
                          result_ttl=self.result_ttl if result_ttl is None else result_ttl,
                          tags=self._tags(tags), track=track, priority=self._priority(priority, worker))
        sender = _client(client)
        handles = [handle_for(sender, job_id) for job_id in sender.queue_calls(calls)]
        if handles:
            self.last = handles[-1]
        return handles

    def _call(self, args: Sequence[Any], kwargs: Mapping[str, Any], *, queue: Optional[str] = None,
              manager: Optional[str] = None, worker: Optional[str] = None, job_id: Optional[str] = None,
              max_attempts: Optional[int] = None, timeout: Optional[float] = None,
              result_ttl: Optional[int] = None, tags: Optional[Iterable[str]] = None,
              track: bool = False, priority: Optional[int] = None, leading: Optional[int] = 0,
              delay: Optional[Delay] = None, at: Optional[datetime] = None, waiter: bool = False) -> Call:
        # ``leading``: positional arguments the job gets before these (a chain's
        # result); None: do not check the fit (not known yet).
        if leading is not None:
            self._check_fits((*[None] * leading, *args), kwargs)
        if queue is None and manager is None and worker is None:
            queue = self.queue
        return Call(self.name, args, kwargs, queue=queue, manager=manager, worker=worker,  # Call copies them
                    job_id=job_id,
                    max_attempts=self.max_attempts if max_attempts is None else max_attempts,
                    timeout=self.timeout if timeout is None else timeout,
                    result_ttl=self.result_ttl if result_ttl is None else result_ttl,
                    tags=self._tags(tags) if tags else self.tags, track=track,
                    priority=self._priority(priority, worker), delay=delay, at=at, waiter=waiter)

    def _priority(self, priority: Optional[int], worker: Optional[str]) -> Optional[int]:
        # The task's default does not apply to a job sent to one worker's own list.
        if priority is not None or worker is not None:
            return priority
        return self.priority

    def _tags(self, tags: Optional[Iterable[str]]) -> tuple[str, ...]:
        return check_tags((*self.tags, *check_tags(tags))) if tags else self.tags

    def _check_fits(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        # A call that cannot bind would only fail in the worker, attempt after
        # attempt: say so to the caller instead.
        fit = self._fit or self._read_fit()
        if not kwargs and fit.fewest <= len(args) <= fit.most:
            return  # the common case, without Signature.bind's cost
        if fit.signature is None:
            return  # no signature to check against
        try:
            fit.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}{fit.signature}: {exc}") from None

    def _read_fit(self) -> _Fit:
        try:
            if self.job_class is not None:
                signature = inspect.signature(self.job_class.work)
                signature = signature.replace(parameters=list(signature.parameters.values())[1:])
            else:
                signature = inspect.signature(self.fn)
        except (TypeError, ValueError):
            signature = None
        self._fit = _Fit(signature)
        return self._fit


class _Fit:
    """How many positional arguments a signature takes, when that alone decides whether a call fits."""

    def __init__(self, signature: Optional[inspect.Signature]) -> None:
        self.signature = signature
        self.fewest, self.most = 1, 0  # an empty range: always ask bind()
        if signature is None:
            return
        params = list(signature.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if all(p.kind in positional for p in params):  # no *args, no keyword-only, no **kwargs
            self.fewest = sum(1 for p in params if p.default is inspect.Parameter.empty)
            self.most = len(params)


def register(new: Task) -> Task:
    """Add ``new`` to :data:`registry`; a name taken by another live declaration is an error.

    Declaring the same function again (same module and qualified name, as
    when a manager imports its modules afresh on reload) replaces the old
    entry, as does any declaration from a module since imported afresh.
    """
    old = registry.get(new.name)
    if old is not None and old is not new and old.live and not _same_definition(old, new):
        raise ConfigError(f"task name {new.name!r} is registered twice: at {old.place} "
                          f"({old.module}.{old.__qualname__}) and at {new.place} "
                          f"({new.module}.{new.__qualname__})")
    registry[new.name] = new
    return new


def _same_definition(a: Task, b: Task) -> bool:
    return (a.module, a.__qualname__) == (b.module, b.__qualname__)


def tasks_in(module: str) -> dict[str, Task]:
    """The live tasks declared in ``module`` or, for a package, in any module under it."""
    prefix = module + "."
    return {name: t for name, t in registry.items()
            if (t.module == module or t.module.startswith(prefix)) and t.live}


@overload
def task(fn: Callable[..., Any], /) -> Task: ...


@overload
def task(fn: None = None, /, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...


def task(fn: Optional[Callable[..., Any]] = None, /, **options: Any) -> Any:
    """Declare a task: ``@task`` or ``@task(name=..., queue=..., max_attempts=..., timeout=...)``.

    An unknown option or a bad value is refused here, with the place of the
    declaration; so is a name another task already has (both places named).
    """
    checked = check_options(options, _caller_place())
    if fn is None:
        return lambda f: _declare(f, checked)
    return _declare(fn, checked)


def _declare(fn: Callable[..., Any], options: dict[str, Any]) -> Task:
    what = getattr(fn, "__qualname__", repr(fn))
    if isinstance(fn, Task):
        raise ConfigError(f"{fn.name} is already a task")
    if isinstance(fn, type):
        raise ConfigError(f"qw.task declares functions; for the class {what}, subclass qw.Job")
    if not inspect.isfunction(fn):  # its module, qualname and place are what a task is known by
        raise TypeError(f"qw.task needs a function, got {fn!r}")
    if inspect.iscoroutinefunction(fn):
        raise ConfigError(f"{what}: qw tasks are plain functions; async def is not supported")
    code = fn.__code__  # its first line is the first decorator's
    return register(Task(fn, options, place=f"{code.co_filename}:{code.co_firstlineno}"))


def _caller_place() -> str:
    """``file:line`` of the code that called our caller."""
    try:
        frame = sys._getframe(2)
    except ValueError:
        return "<unknown>"
    while frame.f_code.co_name == "__init_subclass__" and frame.f_back is not None:
        frame = frame.f_back  # a user's own __init_subclass__ calling ours
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class Job:
    """Base class of class-based tasks: a subclass that defines ``work`` is a task.

    ::

        class Report(qw.Job):
            queue = "reports"           # also: name, max_attempts, timeout
            def work(self, month): ...

        Report.delay("2026-11")         # as for a function task
        Report.call_inline("2026-11")   # Report().work("2026-11"), here

    The task is named ``<module>.<qualname>`` of the class unless the class
    itself sets ``name`` (a subclass does not inherit its parent's name; it
    does inherit ``queue``, ``max_attempts`` and ``timeout``). Each run
    makes a fresh instance with no arguments, so nothing carries over from
    one job to the next. A subclass with no ``work``, of its own or
    inherited, is an abstract base and no task. The class's :class:`Task`
    is ``Report.__task__``.
    """

    name: ClassVar[Optional[str]] = None
    queue: ClassVar[Optional[str]] = None
    max_attempts: ClassVar[Optional[int]] = None
    timeout: ClassVar[Optional[float]] = None
    result_ttl: ClassVar[Optional[int]] = None
    tags: ClassVar[Optional[tuple[str, ...]]] = None
    priority: ClassVar[Optional[int]] = None
    __task__: ClassVar[Task]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.work is Job.work:
            return
        place = _caller_place()
        options = {"name": cls.__dict__.get("name"), "queue": cls.queue, "max_attempts": cls.max_attempts,
                   "timeout": cls.timeout, "result_ttl": cls.result_ttl, "tags": cls.tags,
                   "priority": cls.priority}
        cls.__task__ = register(Task(_runner(cls), check_options(options, place), place=place, job_class=cls))

    def work(self, *args: Any, **kwargs: Any) -> Any:
        """The job's body: override it."""
        raise NotImplementedError

    @classmethod
    def call_inline(cls, *args: Any, **kwargs: Any) -> Any:
        """Run the job here, now: ``cls().work(*args, **kwargs)``."""
        return cls.__task__(*args, **kwargs)

    @classmethod
    def message(cls, *args: Any, **kwargs: Any) -> Call:
        """See :meth:`Task.message`."""
        return cls.__task__.message(*args, **kwargs)

    @classmethod
    def delay(cls, *args: Any, **kwargs: Any) -> JobHandle:
        """See :meth:`Task.delay`."""
        return cls.__task__.send_with(args, kwargs)

    fire = delay

    @classmethod
    def fire_at(cls, delay: Delay, *args: Any, **kwargs: Any) -> JobHandle:
        """See :meth:`Task.fire_at`."""
        return cls.__task__.fire_at(delay, *args, **kwargs)

    @classmethod
    def delay_now(cls, *args: Any, **kwargs: Any) -> JobHandle:
        """See :meth:`Task.delay_now`."""
        return cls.__task__.delay_now(*args, **kwargs)

    @classmethod
    def send_with(cls, args: Sequence[Any] = (), kwargs: Optional[Mapping[str, Any]] = None,
                  **options: Any) -> JobHandle:
        """See :meth:`Task.send_with`."""
        return cls.__task__.send_with(args, kwargs, **options)

    @classmethod
    def map(cls, items: Iterable[Sequence[Any]], **options: Any) -> list[JobHandle]:
        """See :meth:`Task.map`."""
        return cls.__task__.map(items, **options)

    @classmethod
    def s(cls, *args: Any, **kwargs: Any) -> Signature:
        """See :meth:`Task.s`."""
        return cls.__task__.s(*args, **kwargs)

    @classmethod
    def call(cls, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """See :meth:`Task.call`."""
        return cls.__task__.call(*args, timeout=timeout, **kwargs)


def _runner(cls: type) -> Callable[..., Any]:
    """The function a class-based task runs: a fresh instance's ``work``."""
    def run(*args: Any, **kwargs: Any) -> Any:
        return cls().work(*args, **kwargs)

    run.__module__, run.__name__, run.__qualname__ = cls.__module__, cls.__name__, cls.__qualname__
    run.__doc__ = cls.__doc__
    return run


# -- the client tasks queue through: qw.defaults ----------------------------------


def _client(client: Optional[CallQueue]) -> CallQueue:
    chosen = default_client() if client is None else client
    if not callable(getattr(chosen, "queue_call", None)):
        raise TypeError(f"{chosen!r} cannot queue tasks: it has no queue_call()")
    return chosen
