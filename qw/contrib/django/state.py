"""What the app's ``ready()`` found: the settings, or the one line that says what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...exceptions import ConfigError
from .settings import QwSettings


@dataclass
class State:
    """What ``ready()`` found."""

    settings: Optional[QwSettings] = None
    setting_error: Optional[str] = None  # the one line for a bad settings.QW
    import_error: Optional[str] = None  # the one line for a task module that failed
    modules: dict[str, list[str]] = field(default_factory=dict)  # app label: its task modules


state = State()


def ensure_ready() -> QwSettings:
    """The settings, or the one-line :class:`ConfigError` of what ``ready()`` found wrong."""
    if state.setting_error:
        raise ConfigError(state.setting_error)
    if state.import_error:
        raise ConfigError(state.import_error)
    if state.settings is None:
        raise ConfigError("qw.contrib.django is not in INSTALLED_APPS")
    return state.settings
