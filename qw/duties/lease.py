"""Renew the manager's name lease each tick; re-register after an outage; leave if the name is lost."""

from __future__ import annotations

import logging
from typing import Callable

from ..client import Client
from ..lease import NameLease, Renewal
from ..lifecycle import Lifecycle
from ..options import Settings
from . import EveryTick

log = logging.getLogger("qw.manager")


class RenewLease(EveryTick):
    name = "renew_lease"

    def __init__(self, client: Client, lease: NameLease, settings: Settings, lifecycle: Lifecycle,
                 workers: Callable[[], list[str]]) -> None:
        self.client = client
        self.lease = lease
        self.settings = settings
        self.lifecycle = lifecycle
        self.workers = workers

    def run(self) -> None:
        name = self.lease.name
        renewal = self.lease.renew()
        if renewal is Renewal.LOST:
            # Two managers under one name would share worker lists: leave.
            log.error("manager %s: another process now holds this name; stopping", name)
            self.lifecycle.fail(stop=False)
            self.lifecycle.request_stop()
            return
        if renewal is Renewal.HELD:
            return
        if renewal is Renewal.DATA_LOST:
            log.error("manager %s: Redis restarted without its data (persistence off?), or failed over to "
                      "a replica that lacked the last writes: our lease and registration were gone, and "
                      "jobs queued or running before may be lost", name)
        elif renewal is Renewal.RETAKEN:
            log.warning("manager %s: lease had expired (Redis out of reach for over %g s); "
                        "other managers may have requeued our running jobs", name, self.settings.lease)
        restored = self._register(name)
        if renewal is Renewal.MOVED and restored:
            # A failover to a replica that had the lease but not every later write.
            log.warning("manager %s: a new Redis primary answers; it lacked %d of our registrations: "
                        "restored", name, restored)

    def _register(self, name: str) -> int:
        """Register the manager and its workers again (SADD: a no-op for those there); how many were
        missing."""
        keys = self.client.keys
        workers = self.workers()
        pipe = self.client.redis.pipeline()
        pipe.sadd(keys.all_managers, name)
        if workers:
            pipe.sadd(keys.manager_workers(name), *workers)
        return sum(int(added) for added in pipe.execute())
