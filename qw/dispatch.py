"""The worker's side of tasks: what a claimed job runs, or why it is refused.

A :class:`Dispatcher` is built once per worker from what its manager
loaded: a function target (today's ``target(job_id, data)``) or none, the
tasks of its task modules, and the ``--allow`` module patterns. For each
claimed job, :meth:`Dispatcher.resolve` reads the job's ``qw:`` metadata and
returns a :class:`Resolved` (the callable and its arguments), or raises
:class:`~qw.exceptions.Refused`: the job fails at once, without retries,
with that reason. It imports nothing because job data names it, except a
module the allow patterns match.

:func:`outcome` says how a run that raised should end (``Abort``,
``Retry``, ``Refused`` or any other exception).
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

from .call import ARGS_FIELD, JOINED_TASK, KWARGS_FIELD, TASK_FIELD, collected, decode_arguments
from .exceptions import Abort, ConfigError, JobDataError, Refused, Retry, one_line
from .tasks import Job, Task

__all__ = ["AllowList", "Dispatcher", "Outcome", "Refused", "Resolved", "outcome"]

# How many task names a refusal lists before it says "and N more".
MAX_LISTED = 20

_PATTERN = re.compile(r"[A-Za-z0-9_.*?\[\]!-]+")


class AllowList:
    """The modules whose import paths a worker may run (``qw-manager --allow``).

    Each pattern is an ``fnmatch`` pattern over the module part of an import
    path, case-sensitive; ``*`` also matches dots. ``myapp.tasks`` allows
    exactly that module; ``myapp.*`` allows every module under ``myapp``
    *and* ``myapp`` itself (a package's ``__init__`` is part of the package
    one names). No patterns (the default) allow nothing.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(check_allow_pattern(p) for p in patterns)
        regexes = [fnmatch.translate(p) for p in self.patterns]
        regexes += [fnmatch.translate(p[:-2]) for p in self.patterns if p.endswith(".*")]
        # One regex for all patterns; no cache of answers, as job data picks
        # the names asked about (the dispatcher remembers what it imported).
        self._match = re.compile("|".join(regexes)).match if regexes else None

    def __contains__(self, module: str) -> bool:
        """True if ``module`` may be imported for an import-path job."""
        return bool(self._match and self._match(module))

    def __repr__(self) -> str:
        return f"AllowList({list(self.patterns)!r})"


def check_allow_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a module pattern, else :class:`ConfigError` saying why."""
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"--allow takes module patterns such as 'myapp.*', got {pattern!r}")
    if ":" in pattern:
        raise ConfigError(f"--allow takes module patterns such as 'myapp.*', not import paths: {pattern!r}")
    if not _PATTERN.fullmatch(pattern):
        raise ConfigError(f"--allow pattern {pattern!r} may hold only module names and * ? [ ]")
    return pattern


@dataclass  # not frozen: one is made per job, and a frozen one costs more to make
class Resolved:
    """What one job runs: ``fn`` with ``args`` and ``kwargs``.

    ``task`` is the registered :class:`Task` when there is one (its
    ``max_attempts`` and ``timeout`` apply when the job does not set its
    own). ``plain`` is a job without ``qw:task``: ``fn`` is the function
    target, called as ``fn(job_id, data)``. :meth:`run` makes the right call.
    """

    fn: Callable[..., Any]
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    task: Optional[Task] = None
    plain: bool = False
    takes_job: bool = False  # a method of a class target: called with the job itself

    def run(self, job_id: str, data: dict[str, Any], job: Any = None) -> Any:
        """Call it: ``fn(job_id, data)`` for a plain job, ``fn(job)`` for a class target's method,
        else ``fn(*args, **kwargs)``."""
        if self.takes_job:
            return self.fn(job)
        if self.plain:
            return self.fn(job_id, data)
        return self.fn(*self.args, **self.kwargs)

    @property
    def max_attempts(self) -> Optional[int]:
        """The task's declared attempt limit, if it is a task that declares one."""
        return self.task.max_attempts if self.task is not None else None

    @property
    def timeout(self) -> Optional[float]:
        """The task's declared time limit in seconds, if it is a task that declares one."""
        return self.task.timeout if self.task is not None else None


class Dispatcher:
    """Maps a claimed job's metadata to what runs it, for one worker.

    ``target`` is the function target or None; ``tasks`` the tasks this
    manager runs, by name (:func:`qw.loading.load_task_modules`); ``allow``
    the module patterns for import-path jobs. Resolving is a dictionary
    look-up and a JSON decode per job; import paths are imported once.
    """

    def __init__(self, target: Optional[Callable[..., Any]], tasks: Mapping[str, Task],
                 allow: Iterable[str] = ()) -> None:
        if isinstance(target, Task) or (isinstance(target, type) and issubclass(target, Job)):
            # a task takes its own arguments, not (job_id, data)
            name = target.name if isinstance(target, Task) else f"{target.__module__}.{target.__qualname__}"
            raise ConfigError(f"target {name} is a task: name its module to run the tasks it declares")
        self.target = target
        self.tasks = dict(tasks)
        self.allow = AllowList(allow)
        self.names = tuple(sorted(self.tasks))
        self._plain = Resolved(target, plain=True) if target is not None else None
        # A class as the target (a pipeline's stages): one method per queue, else
        # ``process``; a class with neither is called as any target is.
        self._stages = target if isinstance(target, type) else None
        self._paths: dict[str, tuple[Callable[..., Any], Optional[Task]]] = {}

    def resolve(self, meta: Mapping[str, str]) -> Resolved:
        """What the job with this ``qw:`` metadata runs; :class:`Refused` if it must not run."""
        name = meta.get(TASK_FIELD)
        if name == JOINED_TASK:
            return self._joined(meta)
        if name is None:
            if self._plain is None:
                listed = self._listed() or "none (import paths only)"
                raise Refused(f"no target for a plain job; this manager runs only tasks: {listed}")
            if self._stages is not None:
                return self._stage(meta.get("qw:origin", ""))
            return self._plain
        if ":" in name:
            fn, task = self._paths.get(name) or self._import(name)
        else:
            task = self.tasks.get(name)
            if task is None:
                runs = f": {self._listed()}" if self.names else " no tasks"
                raise Refused(f"unknown task {name!r}; this manager runs{runs}")
            fn = task.fn
        try:
            args, kwargs = decode_arguments(meta)
        except JobDataError as exc:
            raise Refused(f"task {name!r}: {exc}") from None
        if "qw:collect" in meta:
            args = [collected(meta), *args]
        return Resolved(fn, args, kwargs, task)

    def _stage(self, origin: str) -> Resolved:
        # all:queue:<name> -> the method <name>; any other queue, or no such
        # method: process. A fresh instance per job, as for a Job class.
        queue = origin.rsplit("all:queue:", 1)[1] if "all:queue:" in origin else ""
        cls = self._stages
        method = getattr(cls, queue, None) if queue.isidentifier() and not queue.startswith("_") else None
        if not callable(method):
            method = getattr(cls, "process", None)
        if not callable(method):
            return self._plain  # a class called as any target is: cls(job_id, data), as before
        return Resolved(getattr(cls(), method.__name__), plain=True, takes_job=True)

    def _joined(self, meta: Mapping[str, str]) -> Resolved:
        # One job that runs several calls in sequence (qw.flow.Joined): each
        # part resolves as a job of its own would, allowlist and all.
        try:
            args, _kwargs = decode_arguments(meta)
            parts = args[0]
            calls = [self.resolve({TASK_FIELD: part[0], ARGS_FIELD: json.dumps(part[1]),
                                   KWARGS_FIELD: json.dumps(part[2])}) for part in parts]
        except (JobDataError, TypeError, IndexError, KeyError) as exc:
            raise Refused(f"a joined job whose parts are not [task, args, kwargs] lists: {exc}") from None

        def run_all() -> list[Any]:
            return [call.run("", {}) for call in calls]

        return Resolved(run_all, [], {}, None)

    def _listed(self) -> str:
        shown = ", ".join(self.names[:MAX_LISTED])
        more = len(self.names) - MAX_LISTED
        return f"{shown} and {more} more" if more > 0 else shown

    def _import(self, path: str) -> tuple[Callable[..., Any], Optional[Task]]:
        """Resolve an import path; only successes are remembered (the job data picks the key)."""
        module_name, _, attrs = path.partition(":")
        parts = attrs.split(".")
        if not _is_dotted_name(module_name) or not all(p.isidentifier() for p in parts):
            raise Refused(f"import path {path!r} is not of the form 'module:function'")
        if module_name not in self.allow:
            raise Refused(f"import path {path!r} is not allowed (qw-manager --allow)")
        if any(p.startswith("_") for p in parts):
            raise Refused(f"import path {path!r} names a private attribute")
        obj: Any = _import_module(path, module_name)
        for part in parts:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                missing = f"module {module_name!r} has no attribute {attrs!r}"
                raise Refused(f"import path {path!r}: {missing}") from None
        fn, task = _callable_of(path, obj)
        # The allowlist names modules, so what runs must come from one: an
        # allowed module's `from os import remove` does not allow os.remove.
        home = task.module if task is not None else getattr(fn, "__module__", None)
        if not isinstance(home, str) or home not in self.allow:
            raise Refused(f"import path {path!r} names {_qualified(fn)} from module {home!r}, "
                          f"which is not allowed (qw-manager --allow)")
        self._paths[path] = (fn, task)
        return fn, task


def _is_dotted_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _import_module(path: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise Refused(f"import path {path!r} cannot be imported: no module named {exc.name!r}") from None
    except Exception as exc:  # the module itself raised while importing
        raise Refused(f"import path {path!r} cannot be imported: {one_line(exc)}") from None


def _callable_of(path: str, obj: Any) -> tuple[Callable[..., Any], Optional[Task]]:
    if isinstance(obj, Task):
        return obj.fn, obj
    if isinstance(obj, type) and issubclass(obj, Job):
        task = getattr(obj, "__task__", None)
        if task is None:
            raise Refused(f"import path {path!r} names a qw.Job without work()")
        return task.fn, task
    if not callable(obj):
        raise Refused(f"import path {path!r} is not callable")
    return obj, None


def _qualified(fn: Any) -> str:
    return repr(getattr(fn, "__qualname__", None) or type(fn).__name__)


@dataclass(frozen=True)
class Outcome:
    """How a failed run ends: ``error`` (one line, for ``qw:error``) and whether to retry.

    ``retry`` False fails the job now, whatever attempts remain. With
    ``retry`` True the job is retried while attempts remain, after
    ``delay`` seconds, or after the manager's backoff when ``delay`` is None.
    """

    error: str
    retry: bool
    delay: Optional[float] = None


def outcome(exc: BaseException) -> Outcome:
    """What the worker does with a run that raised ``exc``.

    ``Refused`` and ``Abort``: fail now. ``Retry``: retry after its delay
    (an attempt is used: with none left the job fails). Anything else: the
    usual retry with backoff.
    """
    if isinstance(exc, Refused):
        return Outcome(str(exc), retry=False)
    if isinstance(exc, Retry):
        return Outcome(one_line(exc), retry=True, delay=exc.delay)
    return Outcome(one_line(exc), retry=not isinstance(exc, Abort))
