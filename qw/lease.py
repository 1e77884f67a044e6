"""A manager's hold on its name: the ``<manager>:heartbeat`` lease.

Taken atomically with the registration, renewed by the manager process (never
by a job's thread, so a busy job never looks dead), released on a clean stop.
A manager whose lease expires is presumed gone: other managers requeue its
workers' jobs (see :mod:`qw.recovery`).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import socket
import time
import uuid
from typing import Optional

import redis

from .client import Client
from .connection import is_cluster, translated
from .exceptions import ManagerNameTaken

log = logging.getLogger("qw.lease")
_TOKEN = re.compile(r"pid (\d+) on (\S+) \(")


class Renewal(enum.Enum):
    """What a renewal found."""

    HELD = "held"  # renewed as usual
    MOVED = "moved"  # renewed, but another server answers now (a failover): the registration is checked
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
        """Take the name and register it, or raise :class:`ManagerNameTaken` naming the holder.

        A holder that was a process of this host which no longer exists (a
        manager killed outright, restarted at once by its supervisor) is
        taken over once its lease has gone unrenewed for half its length,
        rather than after all of it.
        """
        with translated(self.client.config):
            self._run_id = self._server_run_id()
            holder = self._take("")
            if holder and holder != self.token and self._gone(holder):
                log.warning("manager %s: its previous holder (%s) is gone; taking the name over", self.name,
                            holder)
                holder = self._take(holder)
        if holder:
            if holder == self.token:  # handed over to us
                self.renew()
                return
            raise ManagerNameTaken(f"manager {self.name!r} is already running: held by {holder}")

    def _take(self, dead_holder: str) -> str:
        keys = self.client.keys
        holder = self.client.scripts.acquire_name(
            keys=[keys.manager_heartbeat(self.name), keys.all_managers, keys.all_orphaned],
            args=[self.name, self.token, self.ms, dead_holder],
        )
        return holder.decode() if isinstance(holder, bytes) else holder

    def _gone(self, holder: str) -> bool:
        """True when ``holder`` was a process of this host that is gone and no longer renews."""
        match = _TOKEN.match(holder)
        if not match or match.group(2) != socket.gethostname() or int(match.group(1)) == os.getpid():
            return False
        try:
            os.kill(int(match.group(1)), 0)
            return False
        except PermissionError:  # a process of another user: alive
            return False
        except ProcessLookupError:
            pass
        # Another host may share this host name (containers): make sure the
        # lease is not renewed either, for half its length. Every manager
        # renews at least that often.
        key = self.client.keys.manager_heartbeat(self.name)
        last = self.client.redis.pttl(key)
        deadline = time.monotonic() + self.ms / 2000 + 0.2
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.client.redis.pttl(key)
            if now > last or self.client.redis.get(key) not in (holder.encode(), None):
                return False  # renewed: alive after all
            last = now
        return True

    def renew(self) -> Renewal:
        """Extend the lease; retake it if it expired meanwhile (see :class:`Renewal`).

        The server's run id comes back in the same round trip: a new one
        means another server answers (a failover, or a restart), which may
        lack the last writes, so the caller checks the registration.
        """
        keys = self.client.keys
        renewed, run_id = self._renew(keys.manager_heartbeat(self.name))
        moved = run_id != self._run_id
        self._run_id = run_id
        if renewed == 1:
            return Renewal.MOVED if moved else Renewal.HELD
        if renewed == 0:
            return Renewal.LOST
        # Expired: Redis was out of reach longer than the lease, or a server
        # without our writes answers now (a restart without its data, or a
        # failover to a replica that lacked them: the registration is gone too).
        registered = self.client.redis.sismember(keys.all_managers, self.name)
        return Renewal.DATA_LOST if moved and not registered else Renewal.RETAKEN

    def _renew(self, key: str) -> tuple[int, str]:
        """The renewal script's reply and the server's run id, in one round trip (two on a cluster,
        whose pipelines take no scripts)."""
        client = self.client.redis
        if is_cluster(client):
            renewed = self.client.scripts.renew_lease(keys=[key], args=[self.token, self.ms])
            return int(renewed), self._server_run_id()
        script = self.client.scripts.renew_lease
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(script.sha, 1, key, self.token, self.ms)
        pipe.info("server")
        renewed, info = pipe.execute(raise_on_error=False)
        if isinstance(info, Exception):
            raise info
        if isinstance(renewed, redis.exceptions.NoScriptError):  # a new server: load it
            renewed = script(keys=[key], args=[self.token, self.ms])
        elif isinstance(renewed, Exception):
            raise renewed
        return int(renewed), str(info.get("run_id", ""))

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
        client = self.client.redis
        if is_cluster(client):  # the node serving the namespace's slot
            node = client.get_node_from_key(self.client.keys.all_managers)
            return str(client.info("server", target_nodes=node).get("run_id", ""))
        return str(client.info("server").get("run_id", ""))
