"""qw's Lua scripts (``qw/lua/*.lua``), loaded once as named callables.

Each file holds one command; its name ends in the number of keys it takes
(``ack_and_claim-5.lua``). redis-py's ``Script`` runs them with EVALSHA and
falls back to loading them on NOSCRIPT, also inside pipelines;
:class:`DirectCaller` does the same on a connection of its own for the
worker's hot path.
"""

from __future__ import annotations

import contextlib
import re
import time
from functools import cache
from importlib import resources
from typing import Any, Sequence

import redis
from redis.commands.core import Script

from .connection import is_cluster, raw_connection

# A script that needs the shared helpers of qw/lua/lib/<name>.lua says so on a
# line of its own; the line is replaced by that file's text when loading.
_INCLUDE = re.compile(r"^-- #include ([a-z_]+)$", re.MULTILINE)


@cache
def _sources() -> dict[str, str]:
    folder = resources.files("qw") / "lua"
    sources = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            name = entry.name[: -len(".lua")].rsplit("-", 1)[0]
            sources[name] = _expand(entry.read_text(encoding="utf-8"), set())
    return sources


def _expand(source: str, included: set[str]) -> str:
    """``source`` with each include line replaced by its library, itself expanded; each library once."""
    def library(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in included:
            return f"-- ({name} is included above)"
        included.add(name)
        return _expand(_library(name), included)

    return _INCLUDE.sub(library, source)


@cache
def _library(name: str) -> str:
    return (resources.files("qw") / "lua" / "lib" / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The scripts bound to one Redis client, as attributes named after their files."""

    enqueue: Script
    enqueue_many: Script
    ack_and_claim: Script
    ack_and_claim_many: Script
    settle_failure: Script
    requeue: Script
    promote_due: Script
    schedule: Script
    recur: Script
    fire_recurring: Script
    retry_failed: Script
    forget_manager: Script
    acquire_name: Script
    renew_lease: Script
    release_name: Script
    release_lock: Script
    watch: Script
    cancel: Script
    settle_cancel: Script
    track: Script
    clean_index: Script
    set_priority: Script
    depend: Script
    release: Script
    complete: Script

    def __init__(self, client: redis.Redis) -> None:
        for name, source in _sources().items():
            setattr(self, name, client.register_script(source))


def evalsha_each(client: redis.Redis, script: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
                 ) -> list[Any]:
    """Run ``script`` once per (keys, args) call in one round trip; the replies, errors among them
    (as ``pipeline.execute(raise_on_error=False)`` gives them, NOSCRIPT included).

    A cluster pipeline refuses scripts: there, the calls go one by one.
    """
    if is_cluster(client):
        replies: list[Any] = []
        for keys, args in calls:
            try:
                replies.append(client.evalsha(script.sha, len(keys), *keys, *args))
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    return pipe.execute(raise_on_error=False)


class DirectCaller:
    """Runs scripts on one connection of its own, without redis-py's per-command machinery.

    A worker's claim is a round trip per job; the pool, retry and
    instrumentation layers around each redis-py command cost more CPU than
    the round trip itself. Errors propagate as redis-py's own, after the
    connection is dropped (its state is unknown); the next call reconnects.
    """

    def __init__(self, client: redis.Redis, key: str = "") -> None:
        # On a cluster, the connection goes to the primary serving ``key``'s
        # slot: that of every key of the namespace.
        self._conn = raw_connection(client, key)
        self._last_used = 0.0

    def __call__(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        conn = self._conn
        now = time.monotonic()
        if now - self._last_used > 1.0:  # only an idle connection can have gone stale unnoticed
            self._drop_if_stale(conn)
        self._last_used = now
        try:
            try:
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted, or SCRIPT FLUSH
                conn.send_command("SCRIPT", "LOAD", script.script)
                conn.read_response()
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise

    def command(self, *args: Any) -> Any:
        """Send one plain command and return its reply."""
        conn = self._conn
        self._last_used = time.monotonic()
        try:
            conn.send_command(*args)
            return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise

    def block_then_call(
        self, blocking: Sequence[Any], script: Script, keys: Sequence[Any], args: Sequence[Any]
    ) -> tuple[Any, Any]:
        """Send a blocking command and a script call in one write; return both replies.

        Redis runs the script the moment the blocking command returns (it
        was waiting in the connection's buffer), so waking up and claiming
        cost one round trip, not two.
        """
        conn = self._conn
        self._drop_if_stale(conn)
        try:
            conn.send_packed_command(
                conn.pack_commands([blocking, ("EVALSHA", script.sha, len(keys), *keys, *args)])
            )
            first = conn.read_response()
            try:
                second = conn.read_response()
            except redis.exceptions.NoScriptError:
                second = None
        except BaseException:
            conn.disconnect()
            raise
        self._last_used = time.monotonic()
        if second is None:
            second = self(script, keys, args)  # loads the script, then runs it
        return first, second

    def call_then(self, script: Script, keys: Sequence[Any], args: Sequence[Any],
                  command: Sequence[Any]) -> tuple[Any, bool]:
        """Run a script with a plain command right behind it, in one write.

        Returns the script's reply, and True when the script had to be
        loaded and run again: the command then ran before it. The command's
        own reply (or error) is read and dropped: it is sent on a guess, and
        must be harmless either way.
        """
        conn = self._conn
        now = time.monotonic()
        if now - self._last_used > 1.0:
            self._drop_if_stale(conn)
        self._last_used = now
        try:
            conn.send_packed_command(
                conn.pack_commands([("EVALSHA", script.sha, len(keys), *keys, *args), command]))
            try:
                reply = conn.read_response()
            except redis.exceptions.NoScriptError:
                reply = None
            with contextlib.suppress(redis.exceptions.ResponseError):
                conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        return (self(script, keys, args), True) if reply is None else (reply, False)

    @staticmethod
    def _drop_if_stale(conn: Any) -> None:
        # A connection idle while Redis restarted reads as closed: reconnect
        # before sending rather than fail, as redis-py's pool does.
        # redis-py 8 says so itself; older ones (Python 3.9 gets 7) keep a socket or None.
        connected = getattr(conn, "is_connected", None)
        if not (connected if connected is not None else getattr(conn, "_sock", None) is not None):
            return
        try:
            stale = conn.can_read()
        except (redis.ConnectionError, OSError):
            stale = True
        if stale:
            conn.disconnect()

    def close(self) -> None:
        """Close the connection."""
        self._conn.disconnect()
