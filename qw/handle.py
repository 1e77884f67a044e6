"""What queuing a job gives back: a handle on its record, from any process.

``add.delay(4, 5)`` and ``client.job(job_id)`` return one. A handle reads
the job's record when asked (nothing is cached), so any process that knows
the id sees the same state: ``h.state``, ``h.result(timeout)``,
``h.info()``, ``h.cancel()``. See :mod:`qw.records` and :mod:`qw.waiting`.
"""

from __future__ import annotations

from typing import Any, Optional

from . import records, waiting
from .records import JobInfo
from .store import Store


class JobHandle:
    """The job with id ``id`` (``job:<id>`` in Redis).

    ``client`` is the :class:`qw.Client` it reads through (what queued it,
    or ``client.job(id)``'s). Two handles are equal when their ids are;
    ``str(handle)`` is the id.
    """

    __slots__ = ("id", "client")

    def __init__(self, id: str, client: Any = None) -> None:
        self.id = id
        self.client = client

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobHandle):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def store(self) -> Store:
        """The :class:`~qw.store.Store` of the client the handle reads through."""
        return store_of(self.client)

    @property
    def state(self) -> str:
        """``queued``, ``scheduled``, ``waiting``, ``running``, ``retrying``, ``done``, ``failed`` or
        ``cancelled``; :class:`~qw.exceptions.JobNotFound` when there is no record."""
        return records.get_state(self.store, self.id)

    def result(self, timeout: Optional[float] = None) -> Any:
        """Wait (blocked in Redis, never polling) until the job settles; its return value.

        Raises :class:`~qw.exceptions.JobFailed` (with the remote error type,
        message, traceback and attempts) if it failed for good,
        :class:`~qw.exceptions.JobCancelled` if it was cancelled,
        :class:`~qw.exceptions.JobNotFound` at once if it has no record, and
        :class:`TimeoutError` if it has not settled after ``timeout`` seconds
        (None: wait as long as it takes; 0: only look).
        """
        return self._result(timeout, registered=False)

    def _result(self, timeout: Optional[float], registered: bool, popped: object = waiting.NOT_WAITED,
                began: Optional[float] = None) -> Any:
        # registered: queued with this waiter counted (Task.call): no first look;
        # popped: the reply of the BLPOP sent with the queuing call, if any.
        store = self.store
        how = waiting.wait_settled(store, [self.id], timeout, registered, popped, began)[self.id]
        if how.result is not None:  # the token carried it: no read
            return records.decode_result(how.result)
        return records.outcome(records.get_info(store, self.id))

    def info(self) -> JobInfo:
        """Everything the record holds: state, task and arguments or data, result or error,
        attempts, worker, times, history, tags (:class:`~qw.records.JobInfo`)."""
        return records.get_info(self.store, self.id)

    def cancel(self) -> bool:
        """Cancel the job: True if it will not run (again), False if it had already settled.

        A queued (or scheduled, or retrying) job is removed at once; a
        running one is stopped by its manager and not retried.
        """
        return records.cancel(self.store, self.id)


def handle_for(sender: Any, job_id: str) -> Any:
    """The handle of a job ``sender`` queued: its own if it makes one (``make_handle``: immediate mode),
    else a :class:`JobHandle`."""
    make = getattr(sender, "make_handle", None)
    return make(job_id) if make is not None else JobHandle(job_id, sender)


def store_of(client: Any) -> Store:
    """The Store behind ``client`` (a qw.Client)."""
    store = getattr(client, "_store", None)
    if not isinstance(store, Store):
        raise TypeError(f"{client!r} cannot read job records: it is not a qw.Client")
    return store


def wait(handles: Any, timeout: Optional[float] = None, *, client: Any = None) -> list[JobHandle]:
    """Block until every job has settled (done, failed or cancelled); the handles, in order.

    ``handles`` are :class:`JobHandle` objects, or job ids read through
    ``client``. One blocking wait covers them all, in Redis. Raises
    :class:`TimeoutError` naming what has not settled after ``timeout``
    seconds, :class:`~qw.exceptions.JobNotFound` at once for an id with no
    record. Read each outcome with ``h.result(timeout=0)``.
    """
    listed = [h if isinstance(h, JobHandle) or hasattr(h, "result") else JobHandle(str(h), client)
              for h in handles]
    by_store: dict[int, tuple[Store, list[str]]] = {}
    for handle in listed:
        if not isinstance(handle, JobHandle):  # run already, inline (qw.testing): nothing to wait for
            continue
        store = handle.store
        by_store.setdefault(id(store), (store, []))[1].append(handle.id)
    for store, ids in by_store.values():
        waiting.wait_settled(store, ids, timeout)
    return listed
