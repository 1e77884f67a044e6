"""Publish what the manager and each of its workers are doing (``<manager>:health``, ``<manager>:info``)."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from ..batching import BatchSize
from ..client import Client
from ..keys import SHARED_QUEUE
from ..options import Settings
from ..pool import Pool
from ..process import Switch
from ..version import __version__
from . import EveryTick


class PublishHealth(EveryTick):
    name = "publish_health"

    def __init__(self, client: Client, settings: Settings, pool: Pool, paused: Switch) -> None:
        self.client = client
        self.settings = settings
        self.pool = pool
        self.paused = paused
        self.started_at = time.time()

    def _what_it_runs(self) -> dict[str, Any]:
        """The task names it loaded and the queues it serves, for ``qw-client tasks``.

        Names only, one JSON list each: the hash grows with the tasks loaded
        (bounded by code, not by jobs) and holds no figures, which live in
        the workers' shared memory and the stats hashes.
        """
        settings = self.settings
        queues = [name for name, _weight in settings.queues] if settings.queues else [SHARED_QUEUE]
        return {"tasks": json.dumps(sorted(getattr(settings, "task_map", None) or ())),
                "queues": json.dumps(queues), "allow": json.dumps(list(settings.allow)),
                "prefetch": BatchSize(settings.prefetch).most}  # the most a worker holds

    def run(self) -> None:
        now = time.time()
        settings, pool, keys = self.settings, self.pool, self.client.keys
        health = {}
        for slot in pool.slots.values():
            shared = slot.process.shared
            health[slot.process.name] = json.dumps({
                "pid": slot.process.pid,
                "busy_for": round(now - shared.started.value, 3) if shared.started.value else None,
                "since_last_claim": round(max(0.0, now - shared.last_ok.value), 3),
                "at": now,
            })
        ttl = int(settings.lease * 3000)
        target = settings.target
        key = keys.manager_health(pool.name)
        pipe = self.client.redis.pipeline()
        pipe.delete(key)
        if health:
            pipe.hset(key, mapping=health)
        pipe.pexpire(key, ttl)
        pipe.hset(keys.manager_info(pool.name), mapping={
            "pid": os.getpid(), "host": socket.gethostname(), "version": __version__,
            "target": target if isinstance(target, str) else getattr(target, "__name__", "?"),
            "workers": settings.num_workers, "running": pool.active_count(), "paused": int(bool(self.paused)),
            "leaving": pool.retiring_count(), "started": self.started_at, "at": now,
            "history_hours": settings.history[0], "history_days": settings.history[1],
            **self._what_it_runs(),
        })
        pipe.pexpire(keys.manager_info(pool.name), ttl)
        pipe.execute()
