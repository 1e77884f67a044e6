"""qw: a reliable, fast job queue on Redis.

Public API: :class:`Client` queues and inspects jobs, :class:`Manager` runs
worker processes, :class:`Worker` is one of them.
"""

from .client import Client
from .exceptions import QwError
from .manager import Manager
from .version import __version__
from .worker import JobTimeout, Worker, current_job

__all__ = ["Client", "Manager", "Worker", "QwError", "JobTimeout", "current_job", "__version__"]
