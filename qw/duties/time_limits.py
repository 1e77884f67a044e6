"""Kill a worker whose job ran past its time limit and did not stop (the backstop of SIGALRM)."""

from __future__ import annotations

import logging
import time

from ..options import Settings
from ..pool import Pool
from . import EveryTick

log = logging.getLogger("qw.manager")


class EnforceTimeLimits(EveryTick):
    name = "enforce_time_limits"

    def __init__(self, pool: Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    def run(self) -> None:
        # Workers stop their own jobs at the limit (SIGALRM); this is for a
        # job stuck where Python cannot interrupt it.
        grace = self.settings.kill_grace
        now = time.monotonic()
        for slot in list(self.pool.slots.values()):
            if self.pool.deadline_passed(slot, grace, now) and not slot.kill_reason:
                reason = f"ran past its time limit and did not stop; killed {grace:g} s later"
                log.warning("manager %s: %s %s", self.pool.name, slot.process.name, reason)
                self.pool.kill(slot, reason)
