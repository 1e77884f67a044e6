"""The Django app: on ``ready()``, read ``settings.QW``, discover task modules, set the default client.

Nothing raises here: a bad setting or a task module that fails to import is
kept in :data:`.state.state` and reported by Django's check framework
(``qw.E001``: the setting, ``qw.E002``: the import) and, in one line with
exit code 1, by the ``qw_manager``, ``qw_info`` and ``qw`` commands, so a
project's other commands still start and say what is wrong.
"""

from __future__ import annotations

from typing import Optional

from django.apps import AppConfig, apps

from ... import defaults
from ...exceptions import ConfigError
from . import connections
from .client import ProjectClient
from .discovery import discover
from .settings import QwSettings, project_settings
from .state import state


class QwConfig(AppConfig):
    """``qw.contrib.django``."""

    name = "qw.contrib.django"
    label = "qw"
    verbose_name = "qw"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import checks  # noqa: F401 - registers the checks

        connections.install()
        setting_changed.connect(_on_setting_changed, dispatch_uid="qw.contrib.django")
        conf = configure()
        if conf is None:
            return
        try:
            state.modules = discover(apps.get_app_configs(), conf.task_modules)
        except ConfigError as exc:
            state.import_error = str(exc)



def configure() -> Optional[QwSettings]:
    """Read ``settings.QW`` into :data:`state` and set the default client from it; None if it is bad."""
    try:
        conf = state.settings = project_settings()
    except ConfigError as exc:
        state.settings, state.setting_error = None, str(exc)
        return None
    state.setting_error = None
    if conf.immediate:
        from ...testing import ImmediateClient

        defaults.set_default_client(ImmediateClient())
    else:
        defaults.set_default_client(ProjectClient(conf))
    return conf


def _on_setting_changed(setting: str = "", **kwargs: object) -> None:
    # override_settings(QW={...}) in a test: the client follows (task modules stay as discovered).
    if setting == "QW":
        configure()
