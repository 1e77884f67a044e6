"""What a manager's code arguments name: a function target, or modules of tasks.

``qw-manager pkg.mod:fn`` and ``qw-manager pkg.mod.fn`` name a function
target, as they always have; ``qw-manager myapp.tasks`` names a module
whose tasks the manager runs. :func:`classify` tells them apart,
:func:`load_task_modules` imports task modules and collects their tasks.

A manager that reloads its code (HUP) must know every module these import:
``qw.target.CodeTracker`` records only what ``target.resolve`` imports, so
the integration must record :func:`load_task_modules` the same way (the
same ``sys.modules`` difference around the call). :func:`classify` imports
nothing, so it can run before anything starts watching.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional, Sequence

from .exceptions import ConfigError, QwError, TargetError, one_line
from .target import TargetSpec, resolve
from .tasks import Task, tasks_in

FUNCTION = "function"
MODULE = "module"


def classify(spec: TargetSpec) -> str:
    """:data:`FUNCTION` or :data:`MODULE`: what a manager's code argument names.

    A callable, or a string with ``:``, is a function target. A dotted
    name that is a module (or package) is a task module. Anything else
    (``pkg.mod.fn``: ``fn`` is not a module of ``pkg.mod``) is a function
    target as today, for ``qw.target.resolve`` to import and to explain if
    it is missing. Module files are found, never executed, so the answer
    costs no import and changes nothing a reload tracker would see.
    """
    if callable(spec):
        return FUNCTION
    if not isinstance(spec, str) or not spec.strip():
        raise TargetError(f"target must be a callable, 'module:function' or a module, got {spec!r}")
    if ":" in spec:
        return FUNCTION
    return MODULE if is_module(spec) else FUNCTION


def is_module(name: str) -> bool:
    """True if ``name`` names an importable module, found without running any module's code.

    Walks the dotted name as the import system would, asking
    ``sys.meta_path``'s finders for each part inside its parent's path, so
    a package's ``__init__`` is not run to look inside it (an already
    imported module is taken as it is).
    """
    parts = name.split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    path: Optional[list[str]] = None
    for i in range(len(parts)):
        if i and path is None:
            return False  # the parent is a plain module: nothing is inside it
        full = ".".join(parts[: i + 1])
        module = sys.modules.get(full)
        if module is not None:
            locations = getattr(module, "__path__", None)
        else:
            spec = _find_spec(full, path)
            if spec is None:
                return False
            locations = spec.submodule_search_locations
        path = list(locations) if locations is not None else None
    return True


def _find_spec(name: str, path: Optional[list[str]]) -> Any:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec
    return None


def load_task_modules(names: Sequence[str]) -> dict[str, Task]:
    """Import each module (or package) and return the tasks it declares, by name.

    A package contributes the tasks of every module under it that it (or
    anything) imported. A module that declares no task is a
    :class:`ConfigError` (``module 'x' registers no task``): it is almost
    certainly a wrong name. One that cannot be imported is a
    :class:`TargetError` with one line saying why. Two modules declaring
    one name never get here: the second declaration fails on import.
    """
    found: dict[str, Task] = {}
    for name in dict.fromkeys(names):  # each once, in order
        _import(name)
        tasks = tasks_in(name)
        if not tasks:
            raise ConfigError(f"module {name!r} registers no task")
        found.update(tasks)
    return found


def _import(name: str) -> None:
    if not isinstance(name, str) or ":" in name or not all(p.isidentifier() for p in name.split(".")):
        raise TargetError(f"a task module is named by its dotted name, such as 'myapp.tasks'; got {name!r}")
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise TargetError(f"cannot import task module {name!r}: no module named {exc.name!r}") from None
    except QwError:
        raise  # already one line that says where: a duplicate task name, an unknown option
    except Exception as exc:  # the module itself raised while importing
        raise TargetError(f"cannot import task module {name!r}: {one_line(exc)}") from None


def load_code(target: Optional[TargetSpec], modules: Sequence[str]) -> tuple[Any, dict[str, Task]]:
    """Import what a manager runs: its function target (or None) and its task modules' tasks.

    What the manager calls through ``CodeTracker.track`` (at start) and
    ``reload_with`` (on reload), so every module either imports is imported
    afresh on a reload.
    """
    function = resolve(target) if target is not None else None
    return function, load_task_modules(modules) if modules else {}
