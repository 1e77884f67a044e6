"""Assertions on what reached the real Redis."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import redis

from qw import Client


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


@contextmanager
def commands_run(client: redis.Redis) -> Iterator[Callable[[], dict[str, int]]]:
    """Count the commands Redis executed inside the block (INFO itself excluded)."""
    before = _calls(client)
    after: dict[str, int] = {}
    yield lambda: {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    after.update(_calls(client))
    after["info"] = after.get("info", 0) - 1


def lasting_keys(client: Client) -> list[bytes]:
    """Keys left in Redis, less the statistics hashes, which must all expire."""
    keys = sorted(client.redis.keys("*"))
    stats = [key for key in keys if b":stats:" in key]
    assert all(client.redis.ttl(key) > 0 for key in stats), "a statistics hash without expiry"
    return [key for key in keys if key not in stats]
