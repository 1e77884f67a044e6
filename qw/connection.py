"""Where Redis is, and a redis-py client for it, with errors translated.

One place decides the address: an embedded server directory, else a URL
(``--url`` or ``QW_REDIS_URL``, so secrets stay off the command line), else
host, port and db. A ``redis+sentinel://`` URL names Sentinels and a
service instead of a server: every connection then finds the current
primary through redis-py's own :class:`redis.sentinel.Sentinel`, and asks
again whenever it reconnects (see :class:`SentinelConnection`). A
``redis+cluster://`` URL names nodes of a Redis Cluster, reached through
redis-py's :class:`redis.cluster.RedisCluster`; the namespace must then hold
a hash tag, so that all of qw's keys share one slot. :func:`raw_connection`
and :func:`unblock` reach the node that serves that slot.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Iterator, Optional
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from .exceptions import ConfigError, ConnectionFailed

URL_ENV = "QW_REDIS_URL"
MIN_REDIS_VERSION = (6, 2)  # BLMOVE and LMOVE

# Blocking waits are short slices (see Worker), so a reply slower than this
# means Redis or the network is stuck, not busy.
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
# A Sentinel answers from memory: a slower one is down, and the next is asked.
SENTINEL_TIMEOUT = 1.0
# How often a connection in use checks with Sentinel that it still talks to
# the primary. After a manual failover the demoted primary keeps accepting
# writes until Sentinel reconfigures it (about 10 s): writes there are lost.
RECHECK = 1.0
RECHECK_AFTER_FAILURE = 10.0  # the same, while no Sentinel answers
# Error replies after which a Sentinel-managed connection is dropped, so that
# the next command asks Sentinel where the primary is: the server was demoted
# (READONLY, which redis-py's own Sentinel connection turns into a connection
# error), lost its replicas or its primary (NOREPLICAS, MASTERDOWN), is
# loading a data set (LOADING), or changed role under a blocked command
# (UNBLOCKED). redis-py gives some a class of their own, without the code.
REDISCOVER_CLASSES = (redis.exceptions.BusyLoadingError, redis.exceptions.MasterDownError)
REDISCOVER_CODES = ("READONLY ", "NOREPLICAS ", "UNBLOCKED ")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<service>[/<db>]``."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: Optional[str] = None
    password: Optional[str] = None

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """The parts of ``url``; :class:`ConfigError` (one line) when it is not such a URL."""
        scheme, sep, _rest = url.partition("://")
        if not sep or scheme != SENTINEL_SCHEME:
            raise ConfigError(f"bad Sentinel URL: it must start with {SENTINEL_SCHEME}://")
        split = urlsplit(url)
        if split.query or split.fragment:
            raise ConfigError("bad Sentinel URL: it takes no ?query or #fragment")
        userinfo, _, hosts = split.netloc.rpartition("@")
        username, password = _credentials(userinfo)
        sentinels = parse_hosts(hosts, SENTINEL_PORT, "Sentinel")
        path = [unquote(part) for part in split.path.split("/")[1:]]
        if path and path[-1] == "":
            path.pop()
        if not path or not path[0] or len(path) > 2:
            raise ConfigError("bad Sentinel URL: it must end in /<service> or /<service>/<db>")
        db = 0
        if len(path) == 2:
            if not path[1].isdigit():
                raise ConfigError(f"bad Sentinel URL: the database must be a number, got {path[1]!r}")
            db = int(path[1])
        return cls(tuple(sentinels), path[0], db, username, password)

    def address(self) -> str:
        """Where it points, without any password."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"{self.service}/{self.db} via Sentinel {hosts}"


def parse_hosts(hosts: str, default_port: int, what: str) -> list[tuple[str, int]]:
    """``host[:port],host[:port]...`` as (host, port) pairs; :class:`ConfigError` if malformed."""
    found = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = port, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bad {what} URL: {item.strip() or 'an empty address'!r} is not host:port")
        found.append((host, int(port)))
    return found


@dataclass(frozen=True)
class ClusterURL:
    """A parsed ``redis+cluster://[[user]:password@]host[:port][,host[:port]...][/]``."""

    nodes: tuple[tuple[str, int], ...]
    username: Optional[str] = None
    password: Optional[str] = None

    @classmethod
    def parse(cls, url: str) -> ClusterURL:
        if not url.startswith(CLUSTER_SCHEME + "://"):
            raise ConfigError(f"bad Cluster URL: it must start with {CLUSTER_SCHEME}://")
        split = urlsplit(url)
        if split.query or split.fragment:
            raise ConfigError("bad Cluster URL: it takes no ?query or #fragment")
        if split.path not in ("", "/", "/0"):
            raise ConfigError("bad Cluster URL: a cluster has database 0 only")
        userinfo, _, hosts = split.netloc.rpartition("@")
        username, password = _credentials(userinfo)
        return cls(tuple(parse_hosts(hosts, 6379, "Cluster")), username, password)

    def address(self) -> str:
        return "Redis Cluster " + ",".join(f"{host}:{port}" for host, port in self.nodes)


def _credentials(userinfo: str) -> tuple[Optional[str], Optional[str]]:
    """(username, password) from ``user:password``; ``secret`` alone is a password, as for redis-py."""
    if not userinfo:
        return None, None
    user, colon, secret = userinfo.partition(":")
    if not colon:
        return None, unquote(user)
    return unquote(user) or None, unquote(secret)


def is_cluster_url(url: Optional[str]) -> bool:
    return bool(url) and url.startswith(CLUSTER_SCHEME + "://")  # type: ignore[union-attr]


def is_cluster(client: Any) -> bool:
    """True for redis-py's Cluster client."""
    return isinstance(client, RedisCluster)


def has_hash_tag(namespace: str) -> bool:
    """True when ``namespace`` holds a non-empty ``{tag}``: every key under it hashes to the tag's slot."""
    start = namespace.find("{")
    end = namespace.find("}", start + 1)
    return start >= 0 and end > start + 1


def raw_connection(client: Any, key: str) -> Any:
    """A new connection (not open yet) like ``client``'s; on a cluster, to the primary serving ``key``
    (whichever that is when it connects: see :class:`ClusterSlotConnection`)."""
    if is_cluster(client):
        pool = client.get_redis_connection(client.get_node_from_key(key)).connection_pool
        return _following(pool.connection_class)(client, key, **pool.connection_kwargs)
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


# Replies of a cluster node that does not serve the slot (now): the slot
# moved (MOVED), is moving (ASK; TRYAGAIN while its keys are split), or the
# cluster lost a primary (CLUSTERDOWN). A script that touches a key it did
# not declare, already moved to the slot's new node, fails with a message of
# its own, after the reads (and, in ack_and_claim, the acknowledgement) it
# had made; it is repeated as a whole, which every script allows (see each
# one's header).
REDIRECT_CLASSES = (redis.exceptions.AskError, redis.exceptions.TryAgainError,
                    redis.exceptions.ClusterDownError)
REDIRECT_CODES = ("CLUSTERDOWN ", "ASK ", "MOVED ")
NON_LOCAL_KEY = "attempted to access a non local key"


def is_redirect(exc: BaseException) -> bool:
    """True for a cluster node's answer that the namespace's slot is (being) served elsewhere."""
    if isinstance(exc, REDIRECT_CLASSES):
        return True
    return isinstance(exc, redis.ResponseError) and (
        NON_LOCAL_KEY in str(exc) or error_text(exc).startswith(REDIRECT_CODES))


class ClusterSlotConnection:
    """A raw connection to the primary that serves ``key``'s slot, asking the cluster client again on
    every reconnect; mixed into the cluster pool's own connection class (TLS or not).

    A worker's and a producer's own connections bypass redis-py's cluster
    machinery (see :class:`~qw.scripts.DirectCaller`), so they follow a
    slot on their own: a MOVED reply updates the client's map of slots and
    drops the connection; ASK, TRYAGAIN, CLUSTERDOWN and a script's "non
    local key" (the slot is migrating) drop it too, and the caller waits and
    tries again until the slot has moved; a connection error (a primary
    failed) rereads the map from the cluster, where a replica takes over.
    """

    def __init__(self, cluster: Any, key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cluster = cluster
        self._key = key

    def _connect(self) -> Any:  # every way of connecting, in every redis-py, opens the socket here
        node = self._cluster.get_node_from_key(self._key)
        self.host, self.port = node.host, int(node.port)
        try:
            return super()._connect()
        except OSError:
            self._reread()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.exceptions.MovedError as exc:
            self.disconnect()
            mover = getattr(self._cluster.nodes_manager, "move_slot", None)
            if mover is not None:  # redis-py 5+
                mover(exc)
            else:
                self._reread()
            raise
        except redis.ResponseError as exc:
            if is_redirect(exc):
                self.disconnect()
            raise
        except (redis.ConnectionError, redis.TimeoutError):
            self._reread()
            raise

    def _reread(self) -> None:
        """Read the cluster's map of slots again (a primary may have failed); errors left to the caller's
        next try."""
        with suppress(redis.RedisError, RedisClusterException):
            self._cluster.nodes_manager.initialize()


_FOLLOWING: dict[type, type] = {}


def _following(connection_class: type) -> type:
    """``connection_class`` with :class:`ClusterSlotConnection` mixed in (one class per base)."""
    if connection_class not in _FOLLOWING:
        _FOLLOWING[connection_class] = type(f"ClusterSlot{connection_class.__name__}",
                                            (ClusterSlotConnection, connection_class), {})
    return _FOLLOWING[connection_class]


def unblock(client: Any, client_ids: Any, key: str) -> None:
    """CLIENT UNBLOCK each id, on the server that serves ``key`` (errors ignored: an ACL user
    without CLIENT still gets its jobs run, its workers poll anyway)."""
    if not client_ids:
        return
    if is_cluster(client):
        node = client.get_node_from_key(key)
        for client_id in client_ids:
            with suppress(redis.RedisError):
                client.client_unblock(int(client_id), target_nodes=node)
        return
    pipe = client.pipeline(transaction=False)
    for client_id in client_ids:
        pipe.client_unblock(int(client_id))
    pipe.execute(raise_on_error=False)


def is_sentinel_url(url: Optional[str]) -> bool:
    return bool(url) and url.startswith(SENTINEL_SCHEME + "://")  # type: ignore[union-attr]


class SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel-managed connection, asking Sentinel again in every case.

    redis-py reconnects a dropped connection to its last address when a
    command is sent on it directly (as :class:`~qw.scripts.DirectCaller`
    and the blocking waits do); this one always asks Sentinel. Besides
    READONLY, the error replies in ``REDISCOVER_CODES`` drop the connection,
    and a connection in use checks at most every ``RECHECK`` seconds that
    Sentinel still names its server as the primary, so that none keeps
    writing to a demoted one.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._checked = 0.0

    def connect(self) -> None:
        if self._sock is None:  # the pool calls it on every use: only a new connection counts
            try:
                super().connect()
            except MasterNotFoundError:
                # While no Sentinel answers, the primary they named last, if
                # any (a demoted one answers READONLY, and the connection asks
                # again). A Sentinel that answers without a primary in a good
                # state means a failover is under way: wait for it.
                last = self.connection_pool.master_address
                if last is None or self._a_sentinel_answers():
                    raise
                self.connect_to(last)
            self._checked = time.monotonic()

    def _a_sentinel_answers(self) -> bool:
        for sentinel in self.connection_pool.sentinel_manager.sentinels:
            try:
                sentinel.ping()
                return True
            except (redis.ConnectionError, redis.TimeoutError):
                continue
        return False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._sock is None:
            self.connect()
        elif time.monotonic() - self._checked > RECHECK:
            self._recheck()
        super().send_packed_command(command, check_health)

    def _recheck(self) -> None:
        self._checked = time.monotonic()
        try:
            primary = self.connection_pool.get_master_address()
        except (redis.ConnectionError, redis.TimeoutError):
            # No Sentinel answers: keep the primary we have, and ask less
            # often (an unreachable Sentinel can cost SENTINEL_TIMEOUT a try).
            self._checked += RECHECK_AFTER_FAILURE - RECHECK
            return
        if (str(primary[0]), int(primary[1])) != (self.host, int(self.port)):
            self.disconnect()
            self.connect()

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except (redis.ResponseError, *REDISCOVER_CLASSES) as exc:
            if isinstance(exc, REDISCOVER_CLASSES) or error_text(exc).startswith(REDISCOVER_CODES):
                self.disconnect()
            raise


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

    @property
    def cluster(self) -> bool:
        """True when this names a Redis Cluster."""
        return not self.embedded and is_cluster_url(self.resolved_url())

    def address(self) -> str:
        """A human-readable address, without any password."""
        if self.embedded:
            return f"embedded Redis in {self.embedded}"
        url = self.resolved_url()
        if is_sentinel_url(url):
            return SentinelURL.parse(url).address()  # type: ignore[arg-type]
        if is_cluster_url(url):
            return ClusterURL.parse(url).address()  # type: ignore[arg-type]
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
        if is_sentinel_url(url):
            return _sentinel_client(SentinelURL.parse(url), options)  # type: ignore[arg-type]
        if is_cluster_url(url):
            parsed = ClusterURL.parse(url)  # type: ignore[arg-type]
            nodes = [ClusterNode(host, port) for host, port in parsed.nodes]
            try:  # it reads the cluster's layout at once
                return RedisCluster(startup_nodes=nodes, username=parsed.username, password=parsed.password,
                                    socket_keepalive=True, **options)  # type: ignore[return-value]
            except (redis.RedisError, RedisClusterException) as exc:
                message = " ".join(str(exc).split())
                raise ConnectionFailed(f"cannot reach Redis at {parsed.address()}: {message}") from None
        if url:
            if not url.startswith("unix:"):  # keepalive is a TCP option
                options["socket_keepalive"] = True
            try:
                return redis.Redis.from_url(url, **options)
            except ValueError as exc:
                raise ConnectionFailed(f"bad Redis URL: {exc}") from None
        return redis.Redis(host=self.host, port=self.port, db=self.db, socket_keepalive=True, **options)


def _sentinel_client(parsed: SentinelURL, options: dict[str, Any]) -> redis.Redis:
    """A client of the primary of ``parsed.service``, through redis-py's Sentinel."""
    sentinel = Sentinel(
        list(parsed.sentinels),
        sentinel_kwargs=dict(socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=SENTINEL_TIMEOUT,
                             retry=Retry(NoBackoff(), 0)),
    )
    return sentinel.master_for(
        parsed.service, connection_class=SentinelConnection, db=parsed.db, username=parsed.username,
        password=parsed.password, socket_keepalive=True, **options)


@contextmanager
def translated(config: RedisConfig) -> Iterator[None]:
    """Turn redis-py's connection errors into :class:`ConnectionFailed`."""
    try:
        yield
    except redis.AuthenticationError as exc:  # a kind of ConnectionError: catch it first
        raise ConnectionFailed(f"Redis at {config.address()} refused us: {exc}") from None
    except MasterNotFoundError:  # so is this; redis-py's message lists every Sentinel's client
        raise ConnectionFailed(f"cannot reach Redis at {config.address()}: no Sentinel named a "
                               "primary in a good state") from None
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
# redis-py turns some into classes of their own, without the code (MASTERDOWN
# and CLUSTERDOWN are ClusterDownError); others keep their code.
PASSING_CLASSES = (redis.exceptions.OutOfMemoryError, redis.exceptions.TryAgainError,
                   redis.exceptions.ClusterDownError)
PASSING_CODES = ("OOM ", "BUSY ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN ", "NOREPLICAS ", "LOADING ",
                 "UNBLOCKED ")


def is_transient(exc: BaseException) -> bool:
    """True for a Redis error after which waiting and trying again is right (a cluster's slot moving
    among them: :func:`is_redirect`)."""
    if isinstance(exc, (*TRANSIENT, *PASSING_CLASSES)):
        return True
    return isinstance(exc, redis.ResponseError) and (error_text(exc).startswith(PASSING_CODES)
                                                     or is_redirect(exc))


# Redis before 7 wraps an error a command raised inside a script:
# "Error running script (call to f_<sha>): @user_script:12: -NOREPLICAS Not enough ...".
_SCRIPT_ERROR = re.compile(r"^Error running script .*?: @user_script: ?\d+: -?(?=[A-Z]+ )")


def error_text(exc: BaseException) -> str:
    """An error reply's text, from its code on (``NOREPLICAS ...``), also when a script raised it."""
    message = str(exc)
    if message.startswith("Error running script"):
        match = _SCRIPT_ERROR.search(message)
        if match:
            return message[match.end():]
    return message
