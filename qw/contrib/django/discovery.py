"""Autodiscovery: each installed app's task modules (``QW["TASK_MODULES"]``), and only those.

For an app ``shop`` and the default ``["tasks", "qw_workers"]``: ``shop.tasks``
if it exists, and ``shop.qw_workers`` with every module in that package (one
module per worker, as in django-gearman-jbox's ``gearman_workers/``). A
module that is not there is skipped; one that fails to import is an error
naming the app and the module. Module files are found before anything is
imported (:func:`qw.loading.is_module`), so nothing else of an app runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from typing import Any, Iterable, Sequence

from ...exceptions import ConfigError, QwError, one_line
from ...loading import is_module


def app_modules(app: Any, names: Sequence[str]) -> list[str]:
    """The dotted names of ``app``'s task modules that exist (packages' modules included), unimported."""
    found = []
    for name in names:
        full = f"{app.name}.{name}"
        if not is_module(full):
            continue
        found.append(full)
        spec = importlib.util.find_spec(full) if full not in sys.modules else sys.modules[full].__spec__
        locations = spec.submodule_search_locations if spec is not None else None
        if locations:
            found += [f"{full}.{info.name}" for info in pkgutil.iter_modules(list(locations))]
    return found


def discover(apps: Iterable[Any], names: Sequence[str]) -> dict[str, list[str]]:
    """Import the task modules of ``apps``; the modules imported, by app label.

    Raises :class:`ConfigError` (``app 'shop': cannot import shop.tasks:
    NameError: ...``) for the first module that fails.
    """
    imported: dict[str, list[str]] = {}
    for app in apps:
        modules = app_modules(app, names)
        for module in modules:
            try:
                importlib.import_module(module)
            except QwError as exc:  # a duplicate task name, a bad option: already says where
                raise ConfigError(f"app {app.label!r}: {module}: {exc}") from None
            except Exception as exc:
                raise ConfigError(f"app {app.label!r}: cannot import {module}: {one_line(exc)}") from None
        imported[app.label] = modules
    return imported
