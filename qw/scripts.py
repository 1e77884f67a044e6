"""qw's Lua scripts (``qw/lua/*.lua``), loaded once as named callables.

Each file holds one command; its name ends in the number of keys it takes
(``ack_and_claim-5.lua``). redis-py's ``Script`` runs them with EVALSHA and
falls back to loading them on NOSCRIPT, also inside pipelines.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script


@cache
def _sources() -> dict[str, str]:
    folder = resources.files("qw") / "lua"
    sources = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            name = entry.name[: -len(".lua")].rsplit("-", 1)[0]
            sources[name] = entry.read_text(encoding="utf-8")
    return sources


class Scripts:
    """The scripts bound to one Redis client, as attributes named after their files."""

    enqueue: Script
    ack_and_claim: Script
    settle_failure: Script
    requeue: Script
    promote: Script
    retry_failed: Script
    forget_manager: Script
    acquire_name: Script
    renew_lease: Script
    release_name: Script
    release_lock: Script

    def __init__(self, client: redis.Redis) -> None:
        for name, source in _sources().items():
            setattr(self, name, client.register_script(source))
