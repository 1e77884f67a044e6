"""Recover the jobs of managers whose lease ran out (one manager at a time, under a lock)."""

from __future__ import annotations

from .. import recovery
from ..client import Client
from ..options import Settings
from . import EveryTick


class ReapDeparted(EveryTick):
    name = "reap_departed"

    def __init__(self, client: Client, settings: Settings, manager: str) -> None:
        self.client = client
        self.settings = settings
        self.manager = manager

    def run(self) -> None:
        # The lock lasts one tick: a reaper that dies mid-way holds it no longer.
        recovery.reap_departed(self.client, self.manager, int(self.settings.heartbeat_interval * 1000),
                               self.settings.limits.retry.max_attempts)
