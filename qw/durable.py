"""Durable mode: queued jobs and acknowledgements confirmed by replicas (``WAIT``).

Redis replicates asynchronously: a write the primary answered can be lost
if the primary fails before a replica has it. With ``wait_replicas=N``
(``--wait-replicas=N``) qw sends ``WAIT N timeout`` on the very connection
that made the write, right after it (``WAIT`` counts the replicas that hold
that connection's last write), and:

- a producer whose job is confirmed by fewer than N replicas within the
  timeout gets :class:`~qw.exceptions.ReplicationShortfall`: the job *is*
  queued on the primary, but a failover now could lose it. Queuing it again
  with the same ``job_id`` writes nothing and waits again for the same write.
- a worker does not start the job it just claimed (nor report anything)
  until its acknowledgement and claim are confirmed: it repeats ``WAIT``
  on the same connection, warning once, until the replicas catch up or the
  connection breaks (then it reconnects and repeats the claim, which is
  safe: see ``qw/worker.py``). So a failover can neither resurrect a
  confirmed acknowledgement nor lose a claim of a job that is running.

Nothing here runs without the option: callers test ``if durability:``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import redis
from redis.commands.core import Script

from .connection import SOCKET_TIMEOUT, is_cluster
from .exceptions import ConfigError, ReplicationShortfall
from .scripts import DirectCaller

log = logging.getLogger("qw.durable")

DEFAULT_WAIT_TIMEOUT_MS = 1000
# WAIT blocks the connection: it must answer well inside the socket timeout.
MAX_WAIT_TIMEOUT_MS = int(SOCKET_TIMEOUT * 1000 / 2)


@dataclass(frozen=True)
class Durability:
    """How many replicas must confirm a write, and how long one ``WAIT`` may take (ms)."""

    replicas: int
    timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS

    @classmethod
    def of(cls, replicas: Any, timeout_ms: Any = DEFAULT_WAIT_TIMEOUT_MS) -> Optional[Durability]:
        """The setting for ``wait_replicas`` and ``wait_timeout_ms``; None for 0 replicas (the default).

        Bad values are a one-line :class:`ConfigError`.
        """
        replicas = _whole(replicas, "wait_replicas", 0, 1000)
        timeout_ms = _whole(timeout_ms, "wait_timeout_ms", 1, MAX_WAIT_TIMEOUT_MS)
        return cls(replicas, timeout_ms) if replicas else None

    def command(self) -> tuple[Any, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be from {low} to {high}, got {number}")
    return number


def shortfall(durability: Durability, confirmed: int, what: str) -> ReplicationShortfall:
    return ReplicationShortfall(
        f"{what} written to the primary but confirmed by {confirmed} of {durability.replicas} "
        f"replica(s) within {durability.timeout_ms} ms: a failover now could lose it; queue it "
        "again with the same id to wait again", confirmed, durability.replicas)


def confirm(caller: DirectCaller, durability: Durability, what: str) -> None:
    """``WAIT`` for the last write on ``caller``'s connection; :class:`ReplicationShortfall` if short."""
    confirmed = int(caller.command(*durability.command()))
    if confirmed < durability.replicas:
        raise shortfall(durability, confirmed, what)


def run_confirmed(client: redis.Redis, caller: DirectCaller, script: Script,
                  calls: Sequence[tuple[Sequence[Any], Sequence[Any]]], durability: Durability
                  ) -> tuple[list[Any], int]:
    """:func:`qw.scripts.evalsha_each` followed by ``WAIT`` on the same connection: the replies,
    and how many replicas confirmed them.

    A pipeline of the pool on one Redis (one round trip); on a cluster,
    whose pipelines refuse scripts, the calls go one by one on ``caller``
    (a connection to the namespace's primary).
    """
    if is_cluster(client):
        replies: list[Any] = []
        for keys, args in calls:
            try:
                replies.append(caller(script, keys, args))
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies, int(caller.command(*durability.command()))
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    pipe.execute_command(*durability.command())
    *replies, confirmed = pipe.execute(raise_on_error=False)
    if isinstance(confirmed, Exception):
        raise confirmed
    return replies, int(confirmed)


class DurableCaller(DirectCaller):
    """A worker's :class:`DirectCaller` whose script calls return once replicas hold their writes.

    A call that claimed nothing and acknowledged nothing (its reply is
    ``[0]``) wrote only the idle listing: it is not waited for, so an idle
    worker does not stall on missing replicas until it has a job.
    """

    def __init__(self, client: redis.Redis, key: str, durability: Durability, worker: str = "") -> None:
        super().__init__(client, key)
        self.durability = durability
        self.worker = worker
        self._short = False  # warned about a shortfall not yet made up

    def __call__(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        reply = super().__call__(script, keys, args)
        self._wait_out(reply)
        return reply

    def block_then_call(self, blocking: Sequence[Any], script: Script, keys: Sequence[Any],
                        args: Sequence[Any]) -> tuple[Any, Any]:
        first, second = super().block_then_call(blocking, script, keys, args)
        self._wait_out(second)
        return first, second

    def call_then(self, script: Script, keys: Sequence[Any], args: Sequence[Any],
                  command: Sequence[Any]) -> tuple[Any, bool]:
        reply, reloaded = super().call_then(script, keys, args, command)
        self._wait_out(reply)
        return reply, reloaded

    def _wait_out(self, reply: Any) -> None:
        if isinstance(reply, list) and len(reply) == 1 and not int(reply[0]):
            return
        while True:
            confirmed = int(self.command(*self.durability.command()))
            if confirmed >= self.durability.replicas:
                if self._short:
                    log.warning("%s: replicas confirm its writes again", self.worker)
                    self._short = False
                return
            if not self._short:
                log.warning("%s: its last acknowledgement and claim are confirmed by %d of %d replica(s); "
                            "it waits for them before running the job", self.worker, confirmed,
                            self.durability.replicas)
                self._short = True
