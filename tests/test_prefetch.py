"""Workers claiming several jobs per round trip (``prefetch``): the same promises, fewer round trips."""

from __future__ import annotations

import os
import signal
import time

import pytest

from qw import Client, Worker
from qw.exceptions import ConfigError

from conftest import Records, wait_for
from tests_support import commands_run, lasting_keys


def test_a_batch_costs_one_round_trip(client: Client) -> None:
    worker = Worker(client, lambda job_id, data: None, "box", name="box:1", prefetch=10)
    ids = client.queue_jobs({"n": n} for n in range(95))
    claimer, target = worker._setup()
    claimer.claim_many([], 0)  # loads the script
    with commands_run(client.redis) as seen:
        acks: list = []
        order = []
        while True:
            jobs = claimer.claim_many(acks, 10)
            if not jobs:
                break
            for job in jobs:
                target.resolve(job.meta).run(job.id, job.data)
                order.append(job.id)
            acks = jobs
    top_level = {k: v for k, v in seen().items() if k in ("evalsha", "eval", "blmove", "script", "multi")}
    assert top_level == {"evalsha": 11}  # ten batches, and one last claim that found the queues empty
    assert order == ids  # first queued, first run
    assert lasting_keys(client) == [b"box:idle"]


def test_claim_order_and_origin_hold_across_a_batch(client: Client) -> None:
    client.register_worker("box", "box:1")
    shared = client.queue_jobs([{"q": "all"}] * 2)
    mine = client.queue_job({"q": "manager"}, manager="box")
    own = client.queue_jobs([{"q": "worker"}] * 2, worker="box:1")
    claimer = Worker(client, lambda *_: None, "box", name="box:1", prefetch=10)._setup()[0]
    jobs = claimer.claim_many([], 10)
    assert [j.id for j in jobs] == own + [mine] + shared
    assert [j.meta["qw:origin"] for j in jobs] == ["box:1:jobs"] * 2 + ["box:jobs"] + ["all:jobs"] * 2
    assert all(j.attempt == 1 and j.token == 1 for j in jobs)  # tokens count claims of each job
    assert sorted(client.get_worker_pending_jobs("box:1")) == sorted(own + [mine] + shared)  # all in hand
    assert claimer.claim_many(jobs, 0) == [] and claimer.refused == 0
    assert client.get_worker_pending_jobs("box:1") == []
    # A stale acknowledgement (a token from before) changes nothing.
    again = client.queue_job({"q": "again"})
    [job] = claimer.claim_many([], 10)
    assert job.id == again
    client.redis.hset(f"job:{again}", "qw:running", "999")
    claimer.claim_many([job], 0)
    assert claimer.refused == 1 and client.get_worker_pending_jobs("box:1") == [again]


@pytest.mark.parametrize("prefetch", [7, None])  # None: the batch adapts (qw.batching)
def test_a_prefetching_pool_runs_every_job_once(client: Client, records: Records, start_manager,
                                                prefetch) -> None:
    start_manager(name="box", num_workers=2, prefetch=prefetch)
    ids = client.queue_jobs({"dir": str(records.dir), "n": n} for n in range(300))
    to_box = client.queue_jobs([{"dir": str(records.dir)}] * 5, manager="box")
    wait_for(lambda: records.total_done() == 305, what="every job")
    time.sleep(0.2)
    assert all(records.done(j) == 1 for j in ids + to_box)
    assert client.get_all_queued_jobs() == [] and not any(client.get_all_pending_jobs().values())


def test_a_killed_prefetching_worker_charges_only_the_job_it_ran(client: Client, records: Records,
                                                                 start_manager) -> None:
    # One attempt each: a held job charged for the kill would fail for good.
    manager = start_manager(name="box", num_workers=1, prefetch=5, max_attempts=1)
    slow = client.queue_jobs({"dir": str(records.dir), "sleep": 10 if n == 0 else 0} for n in range(5))
    wait_for(lambda: records.started(slow[0]) == 1, what="the first job of the batch")
    assert len(client.get_worker_pending_jobs("box:1")) == 5  # the whole batch is in hand
    os.kill(manager.worker_pids["box:1"], signal.SIGKILL)
    client.queue_job({"dir": str(records.dir)})  # and work goes on
    # The held jobs go back with their attempt given back, and run once each.
    wait_for(lambda: all(records.done(j) == 1 for j in slow[1:]), timeout=20, what="the held jobs")
    assert all(records.started(j) == 1 for j in slow[1:])
    # The one it ran used its attempt: failed for good, with the reason.
    failed = {f.id: f for f in client.get_failed_jobs()}
    assert list(failed) == [slow[0]] and "killed by SIGKILL" in failed[slow[0]].error


def test_a_graceful_stop_gives_back_what_was_not_started(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(name="box", num_workers=1, prefetch=5)
    ids = client.queue_jobs({"dir": str(records.dir), "sleep": 1 if n == 0 else 0} for n in range(5))
    wait_for(lambda: records.started(ids[0]) == 1, what="the first job")
    manager.stop(timeout=15)
    assert records.done(ids[0]) == 1
    assert all(records.started(j) == 0 for j in ids[1:])
    assert sorted(client.get_all_queued_jobs()) == sorted(ids[1:])
    # Given back: no attempt used, no run taken.
    for job_id in ids[1:]:
        fields = client.redis.hgetall(f"job:{job_id}")
        assert fields[b"qw:attempts"] == b"0" and b"qw:running" not in fields


def test_pause_gives_back_what_was_not_started(client: Client, records: Records, start_manager) -> None:
    manager = start_manager(name="box", num_workers=1, prefetch=5)
    ids = client.queue_jobs({"dir": str(records.dir), "sleep": 1 if n == 0 else 0} for n in range(5))
    wait_for(lambda: records.started(ids[0]) == 1, what="the first job")
    assert client.control("box", "pause")["ok"]
    wait_for(lambda: records.done(ids[0]) == 1, what="the running job to finish")
    wait_for(lambda: sorted(client.get_all_queued_jobs()) == sorted(ids[1:]), what="the rest given back")
    time.sleep(0.3)
    assert all(records.started(j) == 0 for j in ids[1:])
    manager.resume()
    wait_for(lambda: records.total_done() == 5, what="the rest after resume")
    assert all(records.done(j) == 1 for j in ids)


def test_interrupting_a_prefetching_worker_runs_no_finished_job_again(
        spawn, client: Client, records: Records, redis_server) -> None:
    proc = spawn(["qw-manager", "--port", str(redis_server.port), "--workers", "1", "--name", "box",
                  "--prefetch", "20", "targets:record"], start_new_session=True)
    wait_for(lambda: client.get_manager_workers("box") == ["box:1"], what="the worker")
    ids = client.queue_jobs({"dir": str(records.dir), "sleep": 0.2 if n == 3 else 0} for n in range(20))
    wait_for(lambda: records.started(ids[3]) == 1, what="the slow job")
    os.killpg(proc.pid, signal.SIGINT)  # at once: the slow job is interrupted
    assert proc.wait(15) == 0
    assert [records.done(j) for j in ids[:3]] == [1, 1, 1]
    assert records.done(ids[3]) == 0
    queued = client.get_all_queued_jobs()
    assert sorted(queued) == sorted(ids[3:])  # finished ones are not queued again
    assert all(client.redis.hget(f"job:{j}", "qw:attempts") == b"0" for j in queued)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_prefetch_must_be_a_positive_whole_number(start_manager, bad) -> None:
    with pytest.raises(ConfigError, match="prefetch"):
        start_manager(name="box", prefetch=bad)
