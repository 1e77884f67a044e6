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
from typing import Any, Callable, Optional, Sequence

import redis
from redis.commands.core import Script

from .connection import is_cluster, raw_connection

# A script that needs the shared helpers of qw/lua/lib/<name>.lua says so on a
# line of its own, "-- #include <name>", perhaps indented and one after
# another for several libraries. Each such group of lines is replaced by the
# definitions of those libraries (and of those they include) that the script
# uses, directly or through another definition, in the libraries' order.
# Redis runs a script's whole text on every call, and each ``local function``
# it passes creates a closure (about a microsecond for a dozen): so a hot
# script includes only what it uses, and where only a rare branch needs
# helpers, it includes them inside that branch.
_INCLUDES = re.compile(r"^[ \t]*-- #include [a-z_]+$(?:\n[ \t]*-- #include [a-z_]+$)*", re.MULTILINE)
_INCLUDE = re.compile(r"^[ \t]*-- #include ([a-z_]+)$", re.MULTILINE)
# A top-level definition of a library: "local function name(" or "local a, b =".
_DEFINITION = re.compile(r"^local (?:function ([A-Za-z_]\w*)|([A-Za-z_]\w*(?:, *[A-Za-z_]\w*)*) *=)")
_NAME = re.compile(r"[A-Za-z_]\w*")
_COMMENT = re.compile(r"--.*$", re.MULTILINE)


@cache
def _sources() -> dict[str, str]:
    folder = resources.files("qw") / "lua"
    sources = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            name = entry.name[: -len(".lua")].rsplit("-", 1)[0]
            sources[name] = _expand(entry.read_text(encoding="utf-8"))
    return sources


def _expand(source: str) -> str:
    """``source`` with each group of include lines replaced by the library definitions it uses."""
    used = _names(_INCLUDES.sub("", source))

    def group(match: re.Match[str]) -> str:
        definitions: list[tuple[frozenset[str], str]] = []
        seen: set[str] = set()
        for name in _INCLUDE.findall(match.group(0)):
            _collect(name, seen, definitions)
        needed, chosen = set(used), []
        # A definition can use only those before it: one pass from the end
        # finds all that the script reaches.
        for names, text in reversed(definitions):
            if names & needed:
                chosen.append(text)
                needed |= _names(text)
        return "\n".join(reversed(chosen)) or "-- (nothing of it is used)"

    return _INCLUDES.sub(group, source)


def _collect(name: str, seen: set[str], out: list[tuple[frozenset[str], str]]) -> None:
    """Append library ``name``'s top-level definitions (each with its comments) to ``out``, those of
    the libraries it includes in their place; each library once."""
    if name in seen:
        return
    seen.add(name)
    pending: list[str] = []  # comment and blank lines before the next definition
    for line in _library(name).splitlines():
        include = _INCLUDE.match(line)
        definition = _DEFINITION.match(line)
        if include:
            _collect(include.group(1), seen, out)
        elif definition:
            names = definition.group(1) or definition.group(2)
            out.append((frozenset(n.strip() for n in names.split(",")), "\n".join([*pending, line])))
            pending = []
        elif line.startswith("--") or not line.strip():
            pending.append(line)
        else:  # the body of the definition above
            if not out:
                raise ValueError(f"lua/lib/{name}.lua: code outside a definition: {line!r}")
            names, text = out[-1]
            out[-1] = (names, "\n".join([text, *pending, line]))
            pending = []


def _names(text: str) -> set[str]:
    return set(_NAME.findall(_COMMENT.sub("", text)))


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


#: What :meth:`DirectCaller.call_then_block` gives when the blocking command's reply was not read.
NOT_WAITED = object()


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

    def call_then_block(self, script: Script, keys: Sequence[Any], args: Sequence[Any],
                        between: Optional[Sequence[Any]], blocking: Sequence[Any],
                        go_on: Callable[[Any], bool]) -> tuple[Any, Any]:
        """Run a script, then (``between`` and) a blocking command, all in one write.

        A caller that queues a job and waits for it pays one round trip,
        not two. ``go_on(reply)`` says whether the script's reply lets the
        blocking command's reply be awaited; if not (the job was not
        queued), or when the script had to be loaded (the blocking command
        then ran before it), the connection is dropped, which ends the
        block, and :data:`NOT_WAITED` comes back instead of its reply. A
        lost connection while blocked also gives :data:`NOT_WAITED`: the
        script's work is done, and the caller waits its usual way.
        """
        conn = self._conn
        now = time.monotonic()
        if now - self._last_used > 1.0:
            self._drop_if_stale(conn)
        self._last_used = now
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args), *([between] if between else []),
                    blocking]
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            try:
                reply = conn.read_response()
            except redis.exceptions.NoScriptError:
                conn.disconnect()
                return self(script, keys, args), NOT_WAITED
            if between:
                with contextlib.suppress(redis.exceptions.ResponseError):
                    conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        if not go_on(reply):
            conn.disconnect()
            return reply, NOT_WAITED
        try:
            return reply, conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            return reply, NOT_WAITED
        except BaseException:
            conn.disconnect()
            raise

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
