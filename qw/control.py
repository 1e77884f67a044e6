"""Commands to a running manager through Redis: ``qw-client scale``, ``reload``, ``pause``...

A command is a JSON object pushed on ``<manager>:control``; the manager pops
it, carries it out and pushes its answer on ``<manager>:reply:<id>``, which
expires. The manager waits for commands on a connection of its own whose
socket sits beside its workers' sentinels in the one ``wait()`` of its
supervising loop, so a command is seen at once, even while every worker is
busy, and without a thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import redis

from .connection import SOCKET_TIMEOUT, raw_connection
from .exceptions import QwError
from .store import Reach

log = logging.getLogger("qw.control")

OPERATIONS = ("scale", "expand", "contract", "reload", "pause", "resume", "stop")
REPLY_TTL = 60  # seconds an answer waits for the client that asked
BLOCK = 5  # seconds one BLPOP of the manager waits before it is sent again


class ControlError(QwError):
    """A command was refused, or its manager did not answer in time."""


@dataclass
class Command:
    """One command to a manager."""

    op: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sender: str = field(default_factory=lambda: f"pid {os.getpid()} on {socket.gethostname()}")

    def encode(self) -> str:
        return json.dumps({"id": self.id, "op": self.op, "args": self.args, "from": self.sender})

    @classmethod
    def decode(cls, raw: bytes | str) -> Command:
        try:
            fields = json.loads(raw)
            command = cls(str(fields["op"]), dict(fields.get("args") or {}), str(fields["id"]),
                          str(fields.get("from", "?")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ControlError(f"not a command: {raw!r} ({exc})") from None
        return command


def send(store: Reach, manager: str, op: str, args: Optional[dict[str, Any]] = None,
         timeout: float = 10.0) -> dict[str, Any]:
    """Send a command and wait for the manager's answer (a dict with ``ok`` and ``message``).

    ``store`` is a :class:`~qw.store.Store`, or a Client. Raises
    :class:`ControlError` when the manager is not running or does not answer
    within ``timeout`` seconds; an unanswered command is withdrawn, so it
    cannot take effect later by surprise.
    """
    if op not in OPERATIONS:
        raise ControlError(f"unknown command {op!r}; one of: {', '.join(OPERATIONS)}")
    keys, client = store.keys, store.redis
    if not client.exists(keys.manager_heartbeat(manager)):
        raise ControlError(f"manager {manager!r} is not running (no live lease)")
    command = Command(op, args or {})
    encoded = command.encode()
    reply_key = keys.manager_reply(manager, command.id)
    client.rpush(keys.manager_control(manager), encoded)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # In slices: a BLPOP longer than the socket timeout would look like a dead connection.
        reply = client.blpop([reply_key], timeout=max(0.01, min(left, SOCKET_TIMEOUT / 2)))
        if reply is not None:
            client.delete(reply_key)
            return json.loads(reply[1])
    if client.lrem(keys.manager_control(manager), 1, encoded):
        raise ControlError(f"manager {manager!r} did not take the command within {timeout:g} s; withdrawn")
    raise ControlError(f"manager {manager!r} took the command but did not confirm within {timeout:g} s")


class Inbox:
    """The manager's end: a BLPOP on ``<manager>:control`` kept in flight on its own connection.

    ``store`` is a :class:`~qw.store.Store`, or the manager's Client: the
    answers go through its redis-py client, the BLPOP through a connection
    built like those of its pool.
    """

    def __init__(self, store: Reach, manager: str) -> None:
        self.store = store
        self.manager = manager
        self.key = store.keys.manager_control(manager)
        self._conn = raw_connection(store.redis, self.key)
        self._sent_at: Optional[float] = None
        self._fd = -1
        self._next_try = 0.0  # after a failure: not before then, so an outage costs one try a second

    def fileno(self) -> Optional[int]:
        """The socket to wait on, a BLPOP sent on it; None while Redis cannot be reached."""
        if self._sent_at is not None:
            if time.monotonic() - self._sent_at < BLOCK + SOCKET_TIMEOUT:
                return self._fd
            self._drop()  # no answer long past the BLPOP's own timeout: a dead connection
        if time.monotonic() < self._next_try:
            return None
        try:
            self._conn.send_command("BLPOP", self.key, BLOCK)
            self._fd = self._conn._sock.fileno()
        except (redis.RedisError, OSError, AttributeError):
            self._drop()
            return None
        self._sent_at = time.monotonic()
        return self._fd

    def take(self) -> list[Command]:
        """Read what the BLPOP returned (call once its socket is readable)."""
        self._sent_at = None
        try:
            reply = self._conn.read_response()
        except (redis.RedisError, OSError):
            self._drop()
            return []
        if reply is None:
            return []
        try:
            return [Command.decode(reply[1])]
        except ControlError as exc:
            log.error("manager %s: %s", self.manager, exc)
            return []

    def answer(self, command: Command, ok: bool, message: str, **details: Any) -> None:
        """Push the answer where the sender waits for it."""
        key = self.store.keys.manager_reply(self.manager, command.id)
        body = json.dumps({"ok": ok, "message": message, "manager": self.manager, **details})
        pipe = self.store.redis.pipeline()
        pipe.rpush(key, body)
        pipe.expire(key, REPLY_TTL)
        pipe.execute()

    def _drop(self) -> None:
        self._next_try = time.monotonic() + 1.0
        self._sent_at = None
        self._fd = -1
        self._conn.disconnect()

    def close(self) -> None:
        self._drop()
