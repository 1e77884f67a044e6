"""A manager's hold on its name: the ``<manager>:heartbeat`` lease.

Taken atomically with the registration, renewed by the manager process (never
by a job's thread, so a busy job never looks dead), released on a clean stop.
A manager whose lease expires is presumed gone: other managers requeue its
workers' jobs (see :mod:`qw.recovery`).
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from typing import Optional

from .client import Client
from .connection import translated
from .exceptions import ManagerNameTaken


class Renewal(enum.Enum):
    """What a renewal found."""

    HELD = "held"  # renewed as usual
    RETAKEN = "retaken"  # it had expired (Redis out of reach too long); taken again
    DATA_LOST = "data lost"  # it had expired because Redis restarted empty; taken again
    LOST = "lost"  # another process holds the name now


class NameLease:
    """The lease on ``name``, held by this process under a unique token."""

    def __init__(self, client: Client, name: str, seconds: float, token: Optional[str] = None) -> None:
        self.client = client
        self.name = name
        self.ms = int(seconds * 1000)
        # A token handed down by a predecessor (a manager executing itself
        # again) takes the name over from it without waiting for expiry.
        self.token = token or f"pid {os.getpid()} on {socket.gethostname()} ({uuid.uuid4().hex[:8]})"
        self._run_id = ""

    def acquire(self) -> None:
        """Take the name and register it, or raise :class:`ManagerNameTaken` naming the holder."""
        keys = self.client.keys
        with translated(self.client.config):
            self._run_id = self._server_run_id()
            holder = self.client.scripts.acquire_name(
                keys=[keys.manager_heartbeat(self.name), keys.all_managers, keys.all_orphaned],
                args=[self.name, self.token, self.ms],
            )
        if holder:
            holder = holder.decode() if isinstance(holder, bytes) else holder
            if holder == self.token:  # handed over to us
                self.renew()
                return
            raise ManagerNameTaken(f"manager {self.name!r} is already running: held by {holder}")

    def renew(self) -> Renewal:
        """Extend the lease; retake it if it expired meanwhile (see :class:`Renewal`)."""
        keys = self.client.keys
        renewed = self.client.scripts.renew_lease(
            keys=[keys.manager_heartbeat(self.name)], args=[self.token, self.ms]
        )
        if renewed == 1:
            return Renewal.HELD
        if renewed == 0:
            return Renewal.LOST
        # Expired: Redis was out of reach longer than the lease, or restarted
        # without its data (a new run id, and our registration gone with it).
        run_id = self._server_run_id()
        registered = self.client.redis.sismember(keys.all_managers, self.name)
        lost_data = run_id != self._run_id and not registered
        self._run_id = run_id
        return Renewal.DATA_LOST if lost_data else Renewal.RETAKEN

    def release(self) -> None:
        """Deregister and drop the lease, if this process still holds it."""
        keys = self.client.keys
        self.client.scripts.release_name(
            keys=[keys.manager_heartbeat(self.name), keys.all_managers, keys.manager_workers(self.name)],
            args=[self.name, self.token],
        )
        self.client.redis.delete(keys.manager_health(self.name), keys.manager_idle(self.name),
                                keys.manager_info(self.name))

    def _server_run_id(self) -> str:
        return str(self.client.redis.info("server").get("run_id", ""))
