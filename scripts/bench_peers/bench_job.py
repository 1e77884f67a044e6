"""The benchmark's no-op job, shared by every system: it only tells the bench it ran.

Each job writes to the *counter* Redis (a second redis-server, not the broker
under test, so the broker's command counts stay clean) over a raw socket in
``CLIENT REPLY OFF`` mode: the job sends a few bytes and never waits for a
reply, so the job itself costs no round trip. Standard library only, so it
imports the same in every virtual environment.

Modes (the job's only argument):

- ``COUNT``: ``INCR bench:done``; the bench polls it to see a drain finish.
- ``STAMP``: also ``RPUSH bench:stamps <time.time()>``; the latency run waits
  on it with BLPOP.
- ``WARM``: also ``SADD bench:pids <pid>``, so the bench sees which worker
  processes are up before it starts timing.

A job of the call workload does the same and returns :data:`RESULT`.
"""

from __future__ import annotations

import os
import socket
import threading
import time

COUNTER_ENV = "QW_BENCH_COUNTER"  # "host:port" of the counter Redis
DONE_KEY = "bench:done"
STAMPS_KEY = "bench:stamps"
PIDS_KEY = "bench:pids"
COUNT, STAMP, WARM = 0, 1, 2
# What a job of the call workload (and qw's drain that keeps results) returns:
# a small value, the same in every system, that the caller checks.
RESULT = "ok"
VARIANT_ENV = "QW_BENCH_VARIANT"  # the run's --variant, set by the driver for itself and the workers


def resp(*parts: str) -> bytes:
    """One Redis command in the wire protocol (RESP)."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_INCR = resp("INCR", DONE_KEY)
# One socket per thread and process: threaded workers must not interleave
# their writes, and a forked worker must not write on its parent's socket.
_local = threading.local()


def _socket() -> socket.socket:
    sock = getattr(_local, "sock", None)
    if sock is None or getattr(_local, "pid", None) != os.getpid():
        host, port = os.environ[COUNTER_ENV].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(resp("CLIENT", "REPLY", "OFF"))
        _local.sock, _local.pid = sock, os.getpid()
    return sock


def ran(mode: int = COUNT) -> None:
    """Record that a job ran (what every system's no-op target calls)."""
    if mode == STAMP:
        payload = resp("RPUSH", STAMPS_KEY, repr(time.time())) + _INCR
    elif mode == WARM:
        payload = resp("SADD", PIDS_KEY, str(os.getpid())) + _INCR
    else:
        payload = _INCR
    _socket().sendall(payload)
