"""Finish settling the dependents a script left for lack of budget (``all:releasing``)."""

from __future__ import annotations

from ..client import Client
from ..options import Settings
from . import EveryTick

PER_TICK = 10  # settled jobs taken up per tick, each up to 1,000 dependents (lib/flow.lua)


class FinishReleases(EveryTick):
    name = "finish_releases"

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def run(self) -> None:
        keys = self.client.keys
        for job_id in self.client.redis.hrandfield(keys.all_releasing, PER_TICK) or ():
            # Another manager may take the same entry first: the script then does nothing.
            self.client.scripts.release(keys=[keys.all_releasing], args=[keys.namespace, job_id])
