"""The project's default client: made from ``settings.QW`` on first use, queuing on commit.

Under ``COMMIT_MODE="on_commit"`` a call queued while the default
database's connection is inside ``transaction.atomic()`` gets its job id now
and is sent by ``transaction.on_commit``: a rollback sends nothing, and the
handle ``delay`` returned names a job that exists once the outermost block
commits. Outside a transaction (autocommit) it is sent at once, as under
``COMMIT_MODE="at_once"``. ``at_once`` is the plain :class:`qw.Client`
(what ``Task.delay_now`` and ``Task.call`` use: a caller who waits for a
result cannot wait for a commit too).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Iterable, Optional

from ...call import Call
from ...client import Client
from ...queuing import new_id
from ...store import Store
from .settings import QwSettings


class ProjectClient:
    """Queues through a :class:`qw.Client` made from the settings, deferring to commit when asked."""

    def __init__(self, conf: QwSettings, using: Optional[str] = None) -> None:
        self.conf = conf
        self.using = using  # the database alias whose transactions count (None: the default)
        self._client: Optional[Client] = None
        self._lock = threading.Lock()

    @property
    def at_once(self) -> Client:
        """The plain client (made on first use: importing settings opens no socket)."""
        with self._lock:
            if self._client is None:
                self._client = Client(url=self.conf.url, namespace=self.conf.namespace)
            return self._client

    @property
    def _store(self) -> Store:  # what a JobHandle reads through
        return self.at_once._store

    def _deferring(self) -> bool:
        if self.conf.commit_mode != "on_commit":
            return False
        from django.db import transaction

        return transaction.get_connection(self.using).in_atomic_block

    def queue_call(self, call: Call) -> str:
        """Send ``call`` now, or when the surrounding transaction commits; its job id either way."""
        if not self._deferring():
            return self.at_once.queue_call(call)
        from django.db import transaction

        if call.job_id is None:
            call = dataclasses.replace(call, job_id=new_id())
        transaction.on_commit(lambda: self.at_once.queue_call(call), using=self.using)
        return call.job_id

    def queue_calls(self, calls: Iterable[Call], batch_size: int = 0) -> list[str]:
        """As :meth:`queue_call` for many: in one round trip per batch, now or on commit."""
        if not self._deferring():
            return self.at_once.queue_calls(calls) if not batch_size else self.at_once.queue_calls(calls,
                                                                                               batch_size)
        from django.db import transaction

        named = [c if c.job_id is not None else dataclasses.replace(c, job_id=new_id()) for c in calls]
        transaction.on_commit(lambda: self.at_once.queue_calls(named), using=self.using)
        return [str(c.job_id) for c in named]

    def close(self) -> None:
        """Close the plain client's connections, if it was made."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __getattr__(self, name: str) -> Any:
        # Everything else a qw.Client does (enqueue, job, info...) goes to it, at once.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.at_once, name)
