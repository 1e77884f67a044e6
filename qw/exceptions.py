"""Every error qw raises on purpose derives from :class:`QwError`.

The CLIs catch ``QwError`` and print its message as one line; anything else
is a bug and keeps its traceback. :class:`Abort` and :class:`Retry` are the
exception: signals a task raises to its worker, not errors of qw's.
"""

from __future__ import annotations


class QwError(Exception):
    """Root of qw's own errors."""


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (runs of whitespace folded), as a job's error is stored."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


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


class ReplicationShortfall(QwError):
    """Too few replicas for a write of a producer's.

    Either durable mode (``wait_replicas``) saw fewer replicas than asked
    confirm it in time (``written``: the job is on the primary, and a
    failover before a replica has it would lose it), or the primary refused
    it (NOREPLICAS, ``min-replicas-to-write``: not ``written``). Either
    way, queuing again with the same id is safe. ``confirmed`` and
    ``wanted`` count replicas (0 when the primary refused).
    """

    def __init__(self, message: str, confirmed: int = 0, wanted: int = 0, written: bool = True) -> None:
        super().__init__(message)
        self.confirmed = confirmed
        self.wanted = wanted
        self.written = written


class Refused(QwError):
    """A worker will not run this job: it fails at once, without retries.

    Raised by :meth:`qw.dispatch.Dispatcher.resolve` for a task this manager
    does not run, an import path it does not allow, or arguments that cannot
    be decoded. The message is the reason stored with the failed job.
    """


# Abort and Retry are not QwError: qw does not raise them and a CLI never
# prints them as its own one-line error. A task raises them to tell the
# worker how its job should end; raised anywhere else (a task called inline)
# they are ordinary exceptions of the caller's.


class Abort(Exception):
    """Raised by a task: fail this job for good, without retries, for ``reason``."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(Exception):
    """Raised by a task: run this job again after ``delay`` seconds, using up an attempt.

    ``delay=None`` means the manager's usual backoff. With no attempt left
    the job fails for good, like any other failure.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        if delay is not None:
            number = isinstance(delay, (int, float)) and not isinstance(delay, bool)
            if not number or not 0 <= delay < float("inf"):
                raise ValueError(f"Retry delay must be a number of seconds >= 0, got {delay!r}")
            delay = float(delay)
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class JobNotFound(QwError):
    """No record of this job: it never existed, or its record expired (or was not kept)."""


class JobCancelled(QwError):
    """The job was cancelled: it will not run (again)."""


class JobFailed(QwError):
    """The job failed for good: its remote error type, message, traceback and attempts.

    ``str()`` is the one-line error as the failed list keeps it
    (``ValueError: bad input``); ``type`` is the remote exception's type
    name (``ValueError``), ``message`` the rest.
    """

    def __init__(self, job_id: str, error: str, traceback: str = "", attempts: int = 0) -> None:
        super().__init__(error)
        self.job_id = job_id
        self.error = error
        kind, sep, message = error.partition(": ")
        looks_like_type = sep and kind.replace(".", "").replace("_", "").isalnum() and " " not in kind
        self.type = kind if looks_like_type else ""
        self.message = message if looks_like_type else error
        self.traceback = traceback
        self.attempts = attempts
