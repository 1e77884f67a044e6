"""qw: a reliable, fast job queue on Redis.

Public API: :class:`Client` queues and inspects jobs, :class:`Manager` runs
worker processes, :class:`Worker` is one of them. :func:`task` and
:class:`Job` declare tasks (:func:`periodic`: tasks that recur); a task raises
:class:`Abort` to fail its job for
good, :class:`Retry` to run it again later.
"""

from . import testing
from .client import Client
from .exceptions import Abort, JobCancelled, JobFailed, JobNotFound, QwError, Retry
from .flow import TimeScheduler, chain, group
from .handle import JobHandle, wait
from .hooks import on_worker_start, on_worker_stop
from .manager import Manager
from .periodic import periodic
from .tasks import Job, task
from .version import __version__
from .worker import JobTimeout, Worker, current_job

__all__ = ["Client", "Manager", "Worker", "QwError", "JobTimeout", "current_job", "task", "periodic", "Job",
           "Abort", "Retry", "JobHandle", "wait", "JobFailed", "JobCancelled", "JobNotFound", "chain",
           "group", "TimeScheduler", "on_worker_start", "on_worker_stop", "testing", "__version__"]
