"""The ``QW`` settings dict: what each key means, its default, and the one-line error for a bad value.

::

    QW = {
        "URL": "redis://localhost:6379/0",   # None: $QW_REDIS_URL, else localhost:6379/0
        "NAMESPACE": "",                      # prefix of every key
        "COMMIT_MODE": "on_commit",           # or "at_once"
        "IMMEDIATE": False,                   # True: tasks run inline (qw.testing)
        "TASK_MODULES": ["tasks", "qw_workers"],
    }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ...exceptions import ConfigError

COMMIT_MODES = ("on_commit", "at_once")
KEYS = ("URL", "NAMESPACE", "COMMIT_MODE", "IMMEDIATE", "TASK_MODULES")


@dataclass(frozen=True)
class QwSettings:
    """``settings.QW``, checked, with defaults filled in."""

    url: Optional[str] = None
    namespace: str = ""
    commit_mode: str = "on_commit"
    immediate: bool = False
    task_modules: tuple[str, ...] = ("tasks", "qw_workers")


def read(value: Any) -> QwSettings:
    """``value`` (``settings.QW``; None: unset) as :class:`QwSettings`; a bad key: one-line ConfigError."""
    if value is None:
        return QwSettings()
    if not isinstance(value, dict):
        raise ConfigError(f"settings.QW must be a dict, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in KEYS)
    if unknown:
        raise ConfigError(f"settings.QW: unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
    url = value.get("URL")
    if url is not None and (not isinstance(url, str) or "://" not in url):
        raise ConfigError(f"settings.QW['URL'] must be a Redis URL such as 'redis://localhost:6379/0', "
                          f"got {url!r}")
    namespace = value.get("NAMESPACE", "")
    if not isinstance(namespace, str):
        raise ConfigError(f"settings.QW['NAMESPACE'] must be a string, got {namespace!r}")
    mode = value.get("COMMIT_MODE", "on_commit")
    if mode not in COMMIT_MODES:
        raise ConfigError(f"settings.QW['COMMIT_MODE'] must be one of {', '.join(COMMIT_MODES)}, "
                          f"got {mode!r}")
    immediate = value.get("IMMEDIATE", False)
    if not isinstance(immediate, bool):
        raise ConfigError(f"settings.QW['IMMEDIATE'] must be True or False, got {immediate!r}")
    modules = value.get("TASK_MODULES", ("tasks", "qw_workers"))
    if isinstance(modules, str) or not isinstance(modules, (list, tuple)) or not all(
            isinstance(m, str) and m and all(p.isidentifier() for p in m.split(".")) for m in modules):
        raise ConfigError(f"settings.QW['TASK_MODULES'] must be a list of module names such as 'tasks', "
                          f"got {modules!r}")
    return QwSettings(url, namespace, mode, immediate, tuple(modules))


def project_settings() -> QwSettings:
    """The project's ``settings.QW``, checked."""
    from django.conf import settings

    return read(getattr(settings, "QW", None))
