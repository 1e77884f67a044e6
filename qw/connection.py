"""Where Redis is, and a redis-py client for it, with errors translated.

One place decides the address: an embedded server directory, else a URL
(``--url`` or ``QW_REDIS_URL``, so secrets stay off the command line), else
host, port and db.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .exceptions import ConnectionFailed

URL_ENV = "QW_REDIS_URL"
MIN_REDIS_VERSION = (6, 2)  # BLMOVE and LMOVE

# Blocking waits are short slices (see Worker), so a reply slower than this
# means Redis or the network is stuck, not busy.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RedisConfig:
    """How to reach Redis; picklable, so worker processes can reconnect."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    url: Optional[str] = None
    embedded: Optional[str] = None

    def resolved_url(self) -> Optional[str]:
        """The URL in force: an explicit one, else ``QW_REDIS_URL``, else none."""
        return self.url or os.environ.get(URL_ENV) or None

    def address(self) -> str:
        """A human-readable address, without any password."""
        if self.embedded:
            return f"embedded Redis in {self.embedded}"
        url = self.resolved_url()
        if url:
            pool = redis.ConnectionPool.from_url(url)
            kw = pool.connection_kwargs
            if "path" in kw:
                return f"unix://{kw['path']}"
            return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
        return f"{self.host}:{self.port}/{self.db}"

    def connect(self) -> redis.Redis:
        """A client for this address (connections open lazily)."""
        # qw retries where it knows an operation is safe to repeat; redis-py
        # retrying behind its back would make `qw-client` slow to fail.
        options: dict[str, Any] = dict(
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        if self.embedded:
            from .embedded import ensure_server

            return redis.Redis(unix_socket_path=str(ensure_server(self.embedded)), **options)
        url = self.resolved_url()
        if url:
            if not url.startswith("unix:"):  # keepalive is a TCP option
                options["socket_keepalive"] = True
            try:
                return redis.Redis.from_url(url, **options)
            except ValueError as exc:
                raise ConnectionFailed(f"bad Redis URL: {exc}") from None
        return redis.Redis(host=self.host, port=self.port, db=self.db, socket_keepalive=True, **options)


@contextmanager
def translated(config: RedisConfig) -> Iterator[None]:
    """Turn redis-py's connection errors into :class:`ConnectionFailed`."""
    try:
        yield
    except redis.AuthenticationError as exc:  # a kind of ConnectionError: catch it first
        raise ConnectionFailed(f"Redis at {config.address()} refused us: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ConnectionFailed(f"cannot reach Redis at {config.address()}: {exc}") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) or "NOPERM" in str(exc):
            raise ConnectionFailed(f"Redis at {config.address()} refused us: {exc}") from None
        raise


def check_server(client: redis.Redis, config: RedisConfig) -> list[str]:
    """Refuse a Redis without BLMOVE; return warnings about settings that risk jobs."""
    with translated(config):
        info = client.info()
    version = str(info.get("redis_version", "0"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_REDIS_VERSION:
        raise ConnectionFailed(
            f"Redis at {config.address()} is version {version}; qw needs 6.2 or newer"
        )
    warnings = []
    policy = info.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        warnings.append(f"Redis maxmemory-policy is {policy}: under memory pressure it may evict "
                        "queued jobs; set it to noeviction")
    if not info.get("aof_enabled") and not _saves_snapshots(client):
        warnings.append("Redis persistence is off (no AOF, no RDB snapshots): a Redis restart "
                        "loses every job; see the README's guarantees")
    return warnings


def _saves_snapshots(client: redis.Redis) -> bool:
    try:
        save = client.config_get("save").get("save", "")
    except redis.ResponseError:  # CONFIG may be disabled (managed Redis): assume it persists
        return True
    return bool(str(save).strip())


# Redis errors after which the same call is safe to repeat (see each caller).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, ConnectionFailed)
# Error replies that say "not now" rather than "wrong": out of memory under
# noeviction, a script running too long, a failover or resharding under way.
# redis-py turns some into classes of their own; others keep their code.
PASSING_CLASSES = (redis.exceptions.OutOfMemoryError, redis.exceptions.TryAgainError)
PASSING_CODES = ("OOM ", "BUSY ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN ", "NOREPLICAS ", "LOADING ")


def is_transient(exc: BaseException) -> bool:
    """True for a Redis error after which waiting and trying again is right."""
    if isinstance(exc, (*TRANSIENT, *PASSING_CLASSES)):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(PASSING_CODES)
