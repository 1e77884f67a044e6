"""Add up the workers' counts from shared memory and write them to Redis's statistics hashes."""

from __future__ import annotations

from ..client import Client
from ..keeper import Keeper
from ..options import Settings
from ..pool import Pool
from . import EveryTick


class FlushStats(EveryTick):
    name = "flush_stats"

    def __init__(self, client: Client, settings: Settings, pool: Pool, stats: Keeper) -> None:
        self.client = client
        self.settings = settings
        self.pool = pool
        self.stats = stats

    def collect(self) -> None:
        """Take the workers' counts into the keeper (no Redis: the metrics endpoint calls it too)."""
        self.stats.collect(slot.process.shared for slot in self.pool.slots.values())

    def run(self) -> None:
        self.collect()
        self.stats.flush(self.client.redis)
