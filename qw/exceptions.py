"""Every error qw raises on purpose derives from :class:`QwError`.

The CLIs catch ``QwError`` and print its message as one line; anything else
is a bug and keeps its traceback.
"""


class QwError(Exception):
    """Root of qw's own errors."""


class ConfigError(QwError):
    """An option or name that breaks the rules (bad worker count, bad name)."""


class ConnectionFailed(QwError):
    """Redis could not be reached, or answered that it cannot serve qw."""


class TargetError(QwError):
    """The target string does not name an importable callable."""


class JobDataError(QwError):
    """Job data that is not a JSON object, or cannot be stored as one."""


class ManagerNameTaken(QwError):
    """Another live manager holds this name."""


class UnknownWorker(QwError):
    """A job was queued to a worker that is not registered."""
