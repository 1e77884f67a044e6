"""A package of tasks: its tasks live in a submodule it imports."""

from . import mail  # noqa: F401
