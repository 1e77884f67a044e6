"""What the producer-side modules work through: one Redis, its keys and scripts.

:class:`Store` bundles the address (:class:`RedisConfig`), the key names
under a namespace (:class:`Keys`), the redis-py client and the loaded Lua
scripts. :mod:`qw.queuing`, :mod:`qw.inspection`, :mod:`qw.failed`,
:mod:`qw.seed` and :mod:`qw.control` take one instead of a
:class:`~qw.client.Client`, so none of them imports the client, which
imports them all. :class:`Reach` is the least of it that some need (a
Client, which has the same attributes, also fits). :func:`text` turns the
bytes Redis answers into ``str``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import redis

from .connection import RedisConfig, has_hash_tag
from .durable import Durability
from .exceptions import ConfigError
from .keys import Keys
from .scripts import Scripts


@dataclass(frozen=True)
class Store:
    """One Redis as qw sees it: address, key names, client and scripts."""

    config: RedisConfig
    keys: Keys
    redis: redis.Redis
    scripts: Scripts
    durability: Optional[Durability] = None  # durable mode (qw.durable): None by default

    @classmethod
    def open(cls, config: RedisConfig, namespace: str = "", durability: Optional[Durability] = None) -> Store:
        """A Store for ``config`` under ``namespace``, with a new redis-py client (no I/O yet)."""
        if config.cluster and not has_hash_tag(namespace):
            raise ConfigError(f"on a Redis Cluster the namespace must hold a hash tag, such as '{{app}}:', "
                              f"so that all of qw's keys share one slot; got {namespace!r}")
        keys = Keys(namespace)
        client = config.connect()
        return cls(config, keys, client, Scripts(client), durability)


class Reach(Protocol):
    """Anything with a redis-py client and the key names: a :class:`Store`, or a Client."""

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def keys(self) -> Keys: ...


def text(value: bytes | str) -> str:
    """A name or id as Redis returned it, as ``str`` (undecodable bytes replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
