"""The Django app: on ``ready()``, read ``settings.QW``, discover task modules, set the default client.

Nothing raises here: a bad setting or a task module that fails to import is
kept in :data:`.state.state` and reported by Django's check framework
(``qw.E001``: the setting, ``qw.E002``: the import) and, in one line with
exit code 1, by the ``qw_manager``, ``qw_info`` and ``qw`` commands, so a
project's other commands still start and say what is wrong.
"""

from __future__ import annotations

from django.apps import AppConfig, apps

from ... import defaults
from ...exceptions import ConfigError
from . import connections
from .client import ProjectClient
from .discovery import discover
from .settings import project_settings
from .state import state


class QwConfig(AppConfig):
    """``qw.contrib.django``."""

    name = "qw.contrib.django"
    label = "qw"
    verbose_name = "qw"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the checks

        connections.install()
        try:
            conf = state.settings = project_settings()
        except ConfigError as exc:
            state.setting_error = str(exc)
            return
        if conf.immediate:
            from ...testing import ImmediateClient

            defaults.set_default_client(ImmediateClient())
        else:
            defaults.set_default_client(ProjectClient(conf))
        try:
            state.modules = discover(apps.get_app_configs(), conf.task_modules)
        except ConfigError as exc:
            state.import_error = str(exc)

