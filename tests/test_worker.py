import os
import signal
import time

import pytest

from qw import Client, Worker
from qw.claim import promote_due
from qw.retry import RetryPolicy
from qw.worker import Limits

from conftest import Records, alive, wait_for
from tests_support import commands_run, lasting_keys


def test_run_once_gives_the_target_the_queued_data(client: Client, records: Records) -> None:
    data = {"dir": str(records.dir), "n": 1, "f": 0.5, "ok": True, "none": None, "nested": {"l": [1, "é"]}}
    job_id = client.queue_job(data)
    worker = Worker(client, "targets:record", "box", name="box:1")
    job = worker.run_once()
    assert job is not None and job.id == job_id and job.attempt == 1
    [run] = records.done_data(job_id)
    assert run["data"] == data
    assert lasting_keys(client) == []  # acknowledged: hash and id gone
    assert worker.run_once() is None


def test_callable_target_and_plain_producer(client: Client) -> None:
    seen = []
    client.redis.hset("job:p1", mapping={"url": "https://example.org", "n": "3"})
    client.redis.lpush("all:jobs", "p1")
    Worker(client, lambda job_id, data: seen.append((job_id, data)), "box", name="box:1").run_once()
    assert seen == [("p1", {"url": "https://example.org", "n": "3"})]


def test_a_raising_target_fails_the_job_with_its_traceback(client: Client, records: Records) -> None:
    job_id = client.queue_job({"dir": str(records.dir), "x": 41}, max_attempts=1)
    worker = Worker(client, "targets:fail", "box", name="box:1")
    worker.run_once()
    [failed] = client.get_failed_jobs()
    assert failed.id == job_id
    assert failed.error == "ValueError: bad value 41"
    assert 'raise ValueError(f"bad value' in failed.traceback
    assert failed.worker == "box:1"
    assert failed.data == {"dir": str(records.dir), "x": 41}
    assert failed.attempts == 1 and [e["error"] for e in failed.errors] == ["ValueError: bad value 41"]
    assert client.get_worker_pending_jobs("box:1") == []


def test_a_raising_target_is_retried_with_backoff_then_failed(client: Client, records: Records) -> None:
    job_id = client.queue_job({"dir": str(records.dir), "x": 1})
    worker = Worker(client, "targets:fail", "box", name="box:1",
                    limits=Limits(RetryPolicy(max_attempts=3, backoff=10)))
    before = time.time()
    worker.run_once()
    [(scheduled, due)] = client.get_scheduled_jobs()
    assert scheduled == job_id and before + 5 <= due <= time.time() + 10  # attempt 1: 5-10 s
    assert client.get_failed_jobs() == [] and client.get_all_queued_jobs() == []
    for attempt in (2, 3):
        client.redis.zadd("all:scheduled", {job_id: 0})  # due now
        assert promote_due(client.redis, client.scripts, client.keys) == 1
        assert client.get_all_queued_jobs() == [job_id]
        assert worker.run_once().attempt == attempt
    [failed] = client.get_failed_jobs()
    assert failed.attempts == 3 and [e["attempt"] for e in failed.errors] == [1, 2, 3]
    assert all("Traceback" in e["traceback"] for e in failed.errors)
    assert client.get_scheduled_jobs() == []
    assert records.started(job_id) == 3


def test_target_metadata_never_reaches_the_target(client: Client) -> None:
    seen = []
    client.queue_job({"a": 1})
    Worker(client, lambda job_id, data: seen.append(data), "box", name="box:1").run_once()
    assert seen == [{"a": 1}]


def test_worker_process_runs_jobs_and_stops_on_sigterm(client: Client, records: Records) -> None:
    worker = Worker(client, "targets:record", "box", name="box:1")
    worker.start()
    wait_for(lambda: client.get_manager_workers("box") == ["box:1"], what="registration")
    ids = client.queue_jobs({"dir": str(records.dir), "n": n} for n in range(20))
    wait_for(lambda: records.total_done() == 20, what="20 jobs")
    assert all(records.done(i) == 1 for i in ids)
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(5)
    assert worker.exitcode == 0
    assert client.get_manager_workers("box") == []


def test_steady_state_costs_one_round_trip_per_job(client: Client) -> None:
    worker = Worker(client, lambda job_id, data: None, "box", name="box:1")
    client.queue_jobs({"n": n} for n in range(101))
    worker.run_once()  # loads the scripts
    claimer, target = worker._setup()
    with commands_run(client.redis) as seen:
        ack = None
        while True:
            job = claimer.claim(ack)
            if job is None:
                break
            target.resolve(job.meta).run(job.id, job.data)
            ack = job
    top_level = {k: v for k, v in seen().items() if k in ("evalsha", "eval", "blmove", "script", "multi")}
    assert top_level == {"evalsha": 101}  # 100 jobs, and one last claim that found the queues empty
    assert lasting_keys(client) == [b"box:idle"]  # the empty claim listed it as idle


def test_worker_exits_when_its_parent_is_gone(client: Client, records: Records, tmp_path) -> None:
    # A parent process starts a worker then dies by SIGKILL: the worker must not linger.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    pids = ctx.Queue()

    def parent() -> None:
        w = Worker(Client(port=client.config.port, host="127.0.0.1"), "targets:record", "box", name="box:9")
        w.start()
        pids.put(w.pid)
        time.sleep(60)

    p = ctx.Process(target=parent)
    p.start()
    worker_pid = pids.get(timeout=10)
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    wait_for(lambda: not alive(worker_pid), timeout=3, what="the orphaned worker to exit")
    # Its job is not lost: it stays in the worker's list for recovery.
    assert client.get_worker_pending_jobs("box:9") == [job_id]


@pytest.mark.parametrize("to", ["manager", "worker"])
def test_an_idle_worker_is_woken_for_a_job_queued_to_it_or_its_manager(client: Client, records: Records, to) -> None:
    # A wait far longer than the check below: only the wake-up can make the job run in time.
    worker = Worker(client, "targets:record", "box", name="box:1", poll_interval=4)
    worker.start()
    try:
        wait_for(lambda: client.redis.hexists("box:idle", "box:1"), what="the worker to be idle")
        time.sleep(0.2)  # now blocked on all:jobs
        target = {"manager": "box"} if to == "manager" else {"worker": "box:1"}
        job_id = client.queue_job({"dir": str(records.dir)}, **target)
        wait_for(lambda: records.done(job_id) == 1, timeout=1, what="the woken worker to run the job")
    finally:
        worker.shutdown()
        worker.join(10)


def test_a_plain_producer_job_to_a_manager_waits_at_most_the_poll_interval(client: Client, records: Records) -> None:
    worker = Worker(client, "targets:record", "box", name="box:1", poll_interval=0.05)
    worker.start()
    try:
        wait_for(lambda: client.redis.hexists("box:idle", "box:1"), what="the worker to be idle")
        client.redis.hset("job:plain", "dir", str(records.dir))
        client.redis.lpush("box:jobs", "plain")
        wait_for(lambda: records.done("plain") == 1, timeout=5, what="the plain producer's job")
    finally:
        worker.shutdown()
        worker.join(5)
