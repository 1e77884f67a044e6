import os
import signal
import time

import pytest

from qw import Client, Manager
from qw.exceptions import ConfigError, ManagerNameTaken, TargetError

from conftest import Records, alive, wait_for
from tests_support import lasting_keys


def test_manager_registers_runs_jobs_and_deregisters(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=2, name="box")
    assert client.get_all_managers() == ["box"]
    assert manager.workers == ["box:1", "box:2"]
    wait_for(lambda: client.get_manager_workers("box") == ["box:1", "box:2"], what="workers")
    client.register_worker("box", "box:1")
    ids = [
        client.queue_job({"dir": str(records.dir), "via": "all"}),
        client.queue_job({"dir": str(records.dir), "via": "manager"}, manager="box"),
        client.queue_job({"dir": str(records.dir), "via": "worker"}, worker="box:2"),
    ]
    wait_for(lambda: all(records.done(i) == 1 for i in ids), what="all three jobs")
    manager.stop()
    assert client.get_all_managers() == []
    assert lasting_keys(client) == []  # no lease, no workers, no job left behind


def test_jobs_for_another_manager_are_left_alone(client: Client, records: Records, start_manager) -> None:
    start_manager(name="box")
    other = client.queue_job({"dir": str(records.dir)}, manager="elsewhere")
    mine = client.queue_job({"dir": str(records.dir)})
    wait_for(lambda: records.done(mine) == 1, what="the shared job")
    time.sleep(0.2)
    assert records.started(other) == 0
    assert client.get_manager_queued_jobs("elsewhere") == [other]


def test_sigkilled_worker_job_runs_once_more_and_worker_is_replaced(
    client: Client, records: Records, start_manager
) -> None:
    manager = start_manager(num_workers=1, name="box")
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 1})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    victim = manager.worker_pids["box:1"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: records.done(job_id) == 1, what="the job to complete after the kill")
    assert records.started(job_id) == 2  # the killed run and the one that completed
    assert manager.workers == ["box:1"]
    assert manager.worker_pids["box:1"] != victim
    time.sleep(0.3)
    assert records.done(job_id) == 1
    assert client.redis.exists(f"job:{job_id}") == 0


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_worker_dying_on_its_own_loses_nothing(client: Client, records: Records, start_manager, how: str) -> None:
    start_manager("targets:die_once", num_workers=1, name="box")
    others = [client.queue_job({"dir": str(records.dir), "how": how}) for _ in range(3)]
    wait_for(lambda: all(records.done(i) == 1 for i in others), what="every job to complete")
    assert client.get_failed_jobs() == []


def test_killed_jobs_go_back_to_the_head_of_their_queue(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=1, name="box")
    first = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(first) == 1, what="the first job to start")
    later = client.queue_job({"dir": str(records.dir), "sleep": 30})
    manager.request_stop(urgent=True)  # kills the worker mid-job
    manager.join(10)
    assert client.get_all_queued_jobs() == [first, later]
    assert client.get_all_managers() == []


def test_stop_lets_the_running_job_finish(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=1, name="box")
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 0.5})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    manager.stop()
    assert records.done(job_id) == 1
    assert lasting_keys(client) == []


def test_stop_past_the_grace_period_requeues(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=1, name="box", graceful_timeout=0.3)
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    manager.stop()
    assert records.done(job_id) == 0
    assert client.get_all_queued_jobs() == [job_id]


def test_two_managers_cannot_share_a_name(client: Client, start_manager, redis_server) -> None:
    start_manager(name="box")
    second = Manager("targets:record", host="127.0.0.1", port=redis_server.port, name="box", num_workers=1)
    with pytest.raises(ManagerNameTaken, match=rf"manager 'box' is already running: held by pid {os.getpid()}"):
        second.start()
    assert second.workers == []


def test_restarted_manager_recovers_its_predecessors_jobs(client: Client, records: Records, start_manager) -> None:
    # What a manager that died by SIGKILL leaves: registered workers with jobs in their lists.
    client.register_manager("box")
    client.register_worker("box", "box:1")
    client.register_worker("box", "box:7")
    shared = client.queue_job({"dir": str(records.dir)})
    client.fetch_next_job("box", "box:1", timeout=1)
    own = client.queue_job({"dir": str(records.dir)}, worker="box:7")
    start_manager(num_workers=1, name="box")
    wait_for(lambda: records.done(shared) == 1 and records.done(own) == 1, what="recovered jobs to run")
    assert client.get_manager_workers("box") == ["box:1"]


def test_bad_options_fail_before_anything_starts(redis_server) -> None:
    port = redis_server.port
    with pytest.raises(TargetError, match="no module named 'nosuch'"):
        Manager("nosuch.module:fn", port=port)
    with pytest.raises(TargetError, match="has no attribute"):
        Manager("targets:nosuch", port=port)
    with pytest.raises(ConfigError):
        Manager("targets:record", port=port, num_workers=0)
    with pytest.raises(ConfigError):
        Manager("targets:record", port=port, name="a b")


def test_workers_die_with_a_sigkilled_manager_and_a_restart_recovers(
    spawn, client: Client, records: Records, redis_server
) -> None:
    import subprocess

    from conftest import children_of

    command = ["qw-manager", "--port", str(redis_server.port), "--host", "127.0.0.1",
               "--workers", "2", "--name", "box", "targets:record"]
    proc = spawn(command, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(client.get_manager_workers("box")) == 2, what="workers")
    workers = children_of(proc.pid)
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=3, what="workers to exit")
    assert client.get_all_managers() == ["box"]  # the registration of a dead manager stays...
    client.redis.delete("box:heartbeat")  # ...until its lease runs out (10 s by default)
    client.redis.hset(f"job:{job_id}", "sleep", "0")
    restarted = spawn(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: records.done(job_id) == 1, what="the restarted manager to run the job")
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(15) == 0


def test_manager_that_loses_its_name_stops(client: Client, start_manager) -> None:
    manager = start_manager(name="box", lease=1.5)
    client.redis.set("box:heartbeat", "pid 1 on elsewhere (usurper)", px=60_000)
    assert manager.join(10)
    assert manager.exit_code == 1
    assert client.redis.get("box:heartbeat") == b"pid 1 on elsewhere (usurper)"  # not ours to release


SPAWNED = """
import multiprocessing, sys
sys.path.insert(0, {tests!r})
from conftest import wait_for
from qw import Client, Manager
from tests_support import lasting_keys

if __name__ == "__main__":
    multiprocessing.set_start_method({method!r})
    client = Client(port={port})
    manager = Manager("targets:record", port={port}, name="spawned", num_workers=2)
    manager.start()
    ids = client.queue_jobs({{"dir": {dir!r}}} for _ in range(4))
    wait_for(lambda: len(__import__("os").listdir({dir!r})) >= 8, what="jobs")
    manager.stop()
    print(manager.exit_code, len(manager.workers))
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_run_under_any_start_method(redis_server, records: Records, tmp_path, method: str) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "spawned.py"
    script.write_text(SPAWNED.format(tests=str(Path(__file__).parent), method=method, port=redis_server.port,
                                     dir=str(records.dir)))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]
    assert records.total_done() == 4


def test_heartbeat_must_fit_in_the_lease(redis_server) -> None:
    with pytest.raises(ConfigError, match="at most half the lease"):
        Manager("targets:record", port=redis_server.port, lease=2, heartbeat=1.5)
    manager = Manager("targets:record", port=redis_server.port, lease=30, heartbeat=5)
    assert manager.heartbeat == 5
    assert Manager("targets:record", port=redis_server.port, lease=1.5).heartbeat == 0.5
