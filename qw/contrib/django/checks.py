"""Django system checks: ``qw.E001`` a bad ``settings.QW``, ``qw.E002`` a task module that fails to import."""

from __future__ import annotations

from typing import Any

from django.core import checks


@checks.register()
def qw_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """What ``ready()`` found wrong, as check errors."""
    from .state import state

    found = []
    if state.setting_error:
        found.append(checks.Error(state.setting_error, id="qw.E001"))
    if state.import_error:
        found.append(checks.Error(state.import_error, id="qw.E002"))
    return found
