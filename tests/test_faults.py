"""Each failure of DESIGN.md section 4, for real: nothing lost, duplicates only where a kill explains them."""

import logging
import os
import signal
import subprocess
import time

import pytest

from qw import Client, Manager, Worker
from qw.claim import Claimer
from qw.recovery import requeue

from conftest import Records, RedisServer, alive, children_of, wait_for


@pytest.mark.parametrize("how, cause", [("exit", "exited with code 13"), ("segfault", "killed by SIGSEGV")])
def test_poison_job_that_kills_its_worker_fails_after_its_attempts(
    client: Client, records: Records, start_manager, how: str, cause: str
) -> None:
    start_manager("targets:die", num_workers=2, name="box", max_attempts=3)
    poison = client.queue_job({"dir": str(records.dir), "how": how})
    wait_for(lambda: client.get_failed_jobs(), what="the poison job to fail", timeout=20)
    [failed] = client.get_failed_jobs()
    assert failed.id == poison and records.started(poison) == 3
    assert [e["attempt"] for e in failed.errors] == [1, 2, 3]
    assert all(cause in e["error"] for e in failed.errors)
    # The fleet is still there and still working.
    client.queue_job({"dir": str(records.dir), "how": how}, max_attempts=1)
    wait_for(lambda: len(client.get_failed_jobs()) == 2, what="the fleet to go on")


def test_sigkill_is_flagged_as_a_likely_oom_kill(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=1, name="box", max_attempts=1)
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    os.kill(manager.worker_pids["box:1"], signal.SIGKILL)
    wait_for(lambda: client.get_failed_jobs(), what="the job to fail")
    assert "killed by SIGKILL (out of memory?" in client.get_failed_jobs()[0].error


def test_memory_error_is_an_ordinary_failure(client: Client, records: Records, start_manager) -> None:
    manager = start_manager("targets:exhaust_memory", num_workers=1, name="box", max_attempts=2, backoff=0)
    pid = manager.worker_pids["box:1"]
    job_id = client.queue_job({"dir": str(records.dir)})
    wait_for(lambda: client.get_failed_jobs(), what="the job to fail", timeout=20)
    [failed] = client.get_failed_jobs()
    assert failed.id == job_id and failed.error.startswith("MemoryError")
    assert len(failed.errors) == 2
    assert manager.worker_pids["box:1"] == pid  # the worker survived


def test_time_limit_interrupts_the_job_and_retries(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=1, name="box", job_timeout=0.5, backoff=0)
    pid = manager.worker_pids["box:1"]
    slow = client.queue_job({"dir": str(records.dir), "sleep": 30}, max_attempts=2)
    wait_for(lambda: client.get_failed_jobs(), what="the slow job to fail", timeout=20)
    [failed] = client.get_failed_jobs()
    assert failed.id == slow and records.started(slow) == 2 and records.done(slow) == 0
    assert all("ran past its time limit of 0.5 s" in e["error"] for e in failed.errors)
    assert manager.worker_pids["box:1"] == pid  # interrupted in Python: no need to kill
    quick = client.queue_job({"dir": str(records.dir), "sleep": 3}, timeout=10)  # its own limit wins
    wait_for(lambda: records.done(quick) == 1, what="a job with a longer limit of its own")


def test_job_deaf_to_its_time_limit_gets_its_worker_killed(client: Client, records: Records, start_manager) -> None:
    manager = start_manager("targets:sleep_deaf", num_workers=1, name="box", job_timeout=0.3, kill_grace=0.5,
                            max_attempts=1)
    pid = manager.worker_pids["box:1"]
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 60})
    wait_for(lambda: client.get_failed_jobs(), what="the stuck job to fail", timeout=10)
    assert "ran past its time limit and did not stop" in client.get_failed_jobs()[0].error
    assert client.get_failed_jobs()[0].id == job_id
    wait_for(lambda: manager.worker_pids.get("box:1") not in (None, pid), what="a replacement worker")


def test_recycling_after_n_jobs_loses_nothing(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(num_workers=1, name="box", max_jobs_per_worker=3)
    first = manager.worker_pids["box:1"]
    ids = client.queue_jobs({"dir": str(records.dir)} for _ in range(10))
    wait_for(lambda: all(records.done(i) == 1 for i in ids), what="every job")
    pids = {records.done_data(i)[0]["pid"] for i in ids}
    assert len(pids) == 4 and first in pids  # 3 + 3 + 3 + 1
    assert records.total_done() == 10


def test_recycling_past_a_memory_ceiling(client: Client, records: Records, start_manager) -> None:
    manager = start_manager("targets:hoard", num_workers=1, name="box", max_memory_per_worker=150)
    first = manager.worker_pids["box:1"]
    ids = [client.queue_job({"dir": str(records.dir), "mb": 60}) for _ in range(4)]
    wait_for(lambda: all(records.done(i) == 1 for i in ids), what="every job")
    wait_for(lambda: manager.worker_pids.get("box:1") not in (None, first), what="a recycled worker")


def test_a_stale_attempt_cannot_settle_the_job(client: Client) -> None:
    job_id = client.queue_job({"a": 1})
    old = Claimer(client.redis, client.scripts, client.keys, "box", "box:1")
    new = Claimer(client.redis, client.scripts, client.keys, "box", "box:1")
    first = old.claim()
    # box:1 is presumed dead and its job requeued; its replacement (same name) claims it again.
    assert requeue(client, "box", "box:1", keep_own=True, cause="presumed dead", max_attempts=5) == 1
    second = new.claim()
    assert (first.attempt, second.attempt) == (1, 2)
    assert old.ack(first) is False  # refused: a newer attempt runs
    assert old.fail(first, "late failure", retry_at=None) == -1
    assert client.get_worker_pending_jobs("box:1") == [job_id] and client.get_failed_jobs() == []
    assert new.ack(second) is True
    assert client.redis.exists(f"job:{job_id}") == 0


def test_a_lapsed_manager_is_reaped_by_another(spawn, client: Client, records: Records, redis_server) -> None:
    command = ["qw-manager", "--port", str(redis_server.port), "--workers", "1", "--name", "doomed",
               "--lease", "1", "targets:record"]
    proc = spawn(command, stderr=subprocess.DEVNULL)
    wait_for(lambda: client.get_manager_workers("doomed"), what="the doomed manager's worker")
    running = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(running) == 1, what="the job to start")
    client.redis.hset(f"job:{running}", "sleep", "0")
    routed = client.queue_job({"dir": str(records.dir)}, manager="doomed")
    workers = children_of(proc.pid)
    proc.kill()
    proc.wait()
    killed_at = time.monotonic()
    survivor = Manager("targets:record", port=redis_server.port, name="survivor", num_workers=1, lease=1)
    survivor.start()
    try:
        wait_for(lambda: records.done(running) == 1, what="the survivor to rerun the job", timeout=10)
        recovery = time.monotonic() - killed_at
        assert recovery < 1 + 2  # the lease, plus up to a tick or two
        assert not any(alive(p) for p in workers)
        # The reaper forgets the manager right after requeuing its jobs: the
        # rerun job can finish in between.
        wait_for(lambda: client.get_all_managers() == ["survivor"], what="the doomed manager forgotten")
        # A job routed to the dead manager itself waits for it, listed as orphaned.
        assert client.get_orphaned_managers() == ["doomed"]
        assert client.get_manager_queued_jobs("doomed") == [routed]
        assert records.started(running) == 2 and records.done(running) == 1
    finally:
        survivor.stop()
    restarted = spawn(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: records.done(routed) == 1, what="the orphaned job once its manager is back")
        assert client.get_orphaned_managers() == []
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(15) == 0


def test_redis_coming_back_empty_is_reported(private_redis: RedisServer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="qw")
    manager = Manager("targets:record", port=private_redis.port, name="box", num_workers=1, lease=1)
    manager.start()
    try:
        private_redis.kill()
        for name in os.listdir(private_redis.directory):
            if name.startswith("appendonly"):
                path = private_redis.directory / name
                (path.unlink() if path.is_file() else __import__("shutil").rmtree(path))
        private_redis.start()
        wait_for(lambda: "Redis restarted without its data" in caplog.text, what="the error", timeout=10)
        client = Client(port=private_redis.port)
        wait_for(lambda: client.get_all_managers() == ["box"], what="the manager to register again")
        wait_for(lambda: client.get_manager_workers("box") == ["box:1"], what="its worker to register again")
    finally:
        manager.stop(20)


def test_startup_warns_about_eviction_and_missing_persistence(private_redis: RedisServer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="qw")
    admin = Client(port=private_redis.port)
    admin.redis.config_set("maxmemory-policy", "allkeys-lru")
    admin.redis.config_set("appendonly", "no")
    manager = Manager("targets:record", port=private_redis.port, name="box", num_workers=1)
    manager.start()
    manager.stop()
    assert "maxmemory-policy is allkeys-lru" in caplog.text
    assert "persistence is off" in caplog.text


def test_workers_are_gone_within_two_seconds_of_a_sigkilled_manager(spawn, client: Client, redis_server) -> None:
    proc = spawn(["qw-manager", "--port", str(redis_server.port), "--workers", "3", "--name", "box",
                  "targets:record"], stderr=subprocess.DEVNULL)
    wait_for(lambda: len(client.get_manager_workers("box")) == 3, what="workers")
    workers = children_of(proc.pid)
    assert len(workers) >= 3
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(alive(p) for p in workers), timeout=2, what="the orphans to exit")


def test_worker_outside_a_manager_keeps_working_alone(client: Client, records: Records) -> None:
    # The seed API: a Worker started by hand, with no Manager around it.
    worker = Worker(client, "targets:record", "solo", name="solo:1")
    worker.start()
    try:
        ids = client.queue_jobs({"dir": str(records.dir)} for _ in range(5))
        wait_for(lambda: all(records.done(i) == 1 for i in ids), what="every job")
    finally:
        worker.shutdown()
        worker.join(5)
    assert worker.exitcode == 0


def test_a_worker_dying_during_a_graceful_stop_gets_its_job_back_at_once(
        client: Client, records: Records, start_manager) -> None:
    manager = start_manager(name="box", num_workers=2, graceful_timeout=20)
    slow = client.queue_job({"dir": str(records.dir), "sleep": 4}, manager="box")
    doomed = client.queue_job({"dir": str(records.dir), "sleep": 30}, manager="box")
    wait_for(lambda: records.started(slow) == 1 and records.started(doomed) == 1, what="both jobs")
    pids = manager.worker_pids
    running = {w: client.get_worker_pending_jobs(w) for w in pids}
    [victim] = [w for w, ids in running.items() if ids == [doomed]]
    manager.request_stop()  # graceful: the slow job may finish
    time.sleep(0.3)
    os.kill(pids[victim], signal.SIGKILL)
    # Back in its queue while the other job still runs, not once it is done.
    wait_for(lambda: client.get_manager_queued_jobs("box") == [doomed], timeout=2, what="the job back")
    assert records.done(slow) == 0
    assert b"killed by SIGKILL" in client.redis.hget(f"job:{doomed}", "qw:error")
    assert manager.join(15)
    assert records.done(slow) == 1


def test_a_manager_killed_outright_can_be_restarted_at_once(
        spawn, client: Client, records: Records, redis_server) -> None:
    # As systemd or supervisord would: the manager is SIGKILLed, and started
    # again on the same host straight away. Its lease (10 s) is still there;
    # the new process sees its holder is gone and takes the name over once
    # the lease has gone unrenewed for half its length.
    command = ["qw-manager", "--port", str(redis_server.port), "--workers", "1", "--name", "box",
               "--lease", "10", "targets:record"]
    first = spawn(command, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: client.get_manager_workers("box") == ["box:1"], what="the first manager")
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    first.kill()
    first.wait()
    began = time.monotonic()
    second = spawn(command, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: records.started(job_id) == 2, timeout=15, what="the job, run again by the new manager")
    assert time.monotonic() - began < 8  # not the whole 10 s lease
    assert second.poll() is None
    assert str(second.pid) in client.get_manager_holder("box")
    second.send_signal(signal.SIGINT)
    assert second.wait(15) == 0
    assert "taking the name over" in second.stderr.read()
