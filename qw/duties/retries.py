"""Move retries that are due from ``all:scheduled`` back to their queues."""

from __future__ import annotations

import logging

from .. import recovery
from ..client import Client
from ..options import Settings
from . import EveryTick

log = logging.getLogger("qw.manager")


class PromoteRetries(EveryTick):
    name = "promote"

    def __init__(self, client: Client, settings: Settings, manager: str) -> None:
        self.client = client
        self.settings = settings
        self.manager = manager

    def run(self) -> None:
        moved = recovery.promote(self.client)
        if moved:
            log.info("manager %s: %d job(s) due for a retry are queued again", self.manager, moved)
