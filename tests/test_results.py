"""Results and job state: handles, waiting in Redis, history, tags, tracking, cancel.

Every test runs real workers against the session's private Redis and
looks only at what a user sees: handles, the client's readers, the keys.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import results_app as app

import qw
from qw import Client, JobCancelled, JobFailed, JobNotFound
from qw.tasks import set_default_client

from conftest import wait_for

TASKS = "results_app"


@pytest.fixture(autouse=True)
def default_client(client: Client) -> Any:
    set_default_client(client)
    yield
    set_default_client(None)


def test_a_task_result_comes_back_through_its_handle(client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    h = app.add.delay(4, 5)
    assert h.result(timeout=10) == 9
    assert h.state == "done"
    info = h.info()
    assert (info.state, info.task, info.args, info.result) == ("done", "results_app.add", [4, 5], 9)
    assert info.attempts == 1 and info.worker == "m1:1"
    assert info.queued_at <= info.started_at <= info.finished_at
    assert [e["event"] for e in info.history] == ["queued", "claimed", "done"]
    assert info.history[1]["worker"] == "m1:1"
    assert 590 <= info.expires_in <= 600
    assert client.job(h.id).result(timeout=0) == 9  # from any handle on the id


def test_call_queues_and_waits_and_the_task_keeps_its_last_job(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    assert app.add.call(2, 3, timeout=10) == 5
    assert (app.add.state, app.add.result) == ("done", 5)
    assert app.Square.call(7, timeout=10) == 49


def test_a_call_that_outlasts_its_timeout_raises_at_the_timeout_and_the_job_still_runs(
        start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="not finished after 0.3 s"):
        app.slow.call(1.5, "late", timeout=0.3)
    assert 0.25 <= time.monotonic() - began < 1.2
    assert app.slow.last.result(timeout=10) == "late"


def test_a_call_gets_its_result_after_the_scripts_are_flushed(client: Client, start_manager: Callable) -> None:
    # Queuing and the first wait go in one write: the queuing script must load
    # first, so that wait is dropped and made again.
    start_manager(TASKS, num_workers=1)
    assert app.add.call(1, 2, timeout=10) == 3
    client.redis.script_flush()
    assert app.add.call(2, 2, timeout=10) == 4


def test_a_call_whose_connection_is_cut_while_it_waits_still_gets_its_result(
        client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    app.add.call(0, 0, timeout=10)
    answer: list[Any] = []
    caller = threading.Thread(target=lambda: answer.append(app.slow.call(1.0, "kept", timeout=20)))
    caller.start()

    def waiting_clients() -> list[str]:
        return [c["id"] for c in client.redis.client_list() if c["cmd"] == "blpop"]

    wait_for(lambda: waiting_clients(), what="the caller to wait in BLPOP")
    for client_id in waiting_clients():
        client.redis.client_kill_filter(_id=client_id)
    caller.join(20)
    assert answer == ["kept"]


def test_a_failure_raises_job_failed_with_the_remote_error(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    h = app.boom.delay("no good")
    with pytest.raises(JobFailed) as caught:
        h.result(timeout=10)
    failed = caught.value
    assert (failed.type, failed.message, failed.attempts) == ("ValueError", "no good", 1)
    assert "raise ValueError(message)" in failed.traceback
    assert h.state == "failed"
    assert [e["event"] for e in h.info().history] == ["queued", "claimed", "failed"]


def test_waiters_before_during_and_after_the_run_all_get_the_result(start_manager: Callable) -> None:
    h = app.slow.delay(0.5, "late")
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(h.result(timeout=15))) for _ in range(3)]
    for t in threads:  # three waiters before any worker runs
        t.start()
    time.sleep(0.2)
    start_manager(TASKS, num_workers=1)
    wait_for(lambda: h.state == "running", what="the job to run")
    during = h.result(timeout=15)  # a waiter that starts while it runs
    for t in threads:
        t.join(15)
    assert results == ["late"] * 3 and during == "late"
    assert h.result(timeout=0) == "late"  # and one after: at once


def test_no_record_raises_not_found_at_once(client: Client) -> None:
    begun = time.monotonic()
    with pytest.raises(JobNotFound):
        client.job("never-queued").result(timeout=30)
    with pytest.raises(JobNotFound):
        _ = client.job("never-queued").state
    assert time.monotonic() - begun < 1


def test_an_expired_record_raises_not_found(client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    h = app.short_lived.delay(1)
    assert h.result(timeout=10) == 1
    wait_for(lambda: not client.redis.exists(f"job:{h.id}"), timeout=5, what="the record to expire")
    with pytest.raises(JobNotFound):
        h.result(timeout=5)


def test_a_wait_that_runs_out_says_the_state(client: Client) -> None:
    h = app.add.delay(1, 1)  # no manager runs
    with pytest.raises(TimeoutError, match=r"not finished after 0.3 s \(state: queued\)"):
        h.result(timeout=0.3)


def test_qw_wait_blocks_for_many_jobs_at_once(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=2)
    handles = [app.slow.delay(0.05 * i, i) for i in range(6)]
    assert qw.wait(handles, timeout=15) == handles
    assert [h.result(timeout=0) for h in handles] == list(range(6))


def test_a_result_that_is_not_json_fails_the_job_without_retries(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1, max_attempts=3)
    h = app.a_set.delay()
    with pytest.raises(JobFailed, match="the result is not JSON: set"):
        h.result(timeout=10)
    assert h.info().attempts == 1


def test_a_result_over_the_size_limit_fails_the_job(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1, max_result_size=1000)
    h = app.echo.delay("x" * 2000)
    with pytest.raises(JobFailed, match="over the limit of 1,000"):
        h.result(timeout=10)


def test_result_ttl_zero_keeps_nothing_and_plain_jobs_keep_nothing(client: Client,
                                                                    start_manager: Callable) -> None:
    start_manager("results_app:plain", tasks=[TASKS], num_workers=1)
    quick = app.add.send_with(args=(1, 2), result_ttl=0)
    plain = client.queue_job({"return": 1})
    wait_for(lambda: client.redis.llen("all:jobs") == 0 and not client.redis.exists(f"job:{quick.id}")
             and not client.redis.exists(f"job:{plain}"), what="both to be gone")
    assert client.get_failed_jobs() == []


def test_a_plain_job_keeps_the_target_return_value_when_asked(client: Client, start_manager: Callable) -> None:
    start_manager("results_app:plain", num_workers=1)
    job_id = client.queue_job({"return": {"ok": True}}, result_ttl=60)
    assert client.job(job_id).result(timeout=10) == {"ok": True}
    info = client.job(job_id).info()
    assert info.data == {"return": {"ok": True}} and info.task is None
    assert [e["event"] for e in info.history] == ["queued", "claimed", "done"]


def test_a_waiter_on_a_job_that_keeps_nothing_still_reads_its_outcome(client: Client,
                                                                     start_manager: Callable) -> None:
    job_id = client.queue_job({"return": 3})  # no result_ttl: nothing would be kept
    h = client.job(job_id)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(h.result(timeout=15)))
    waiter.start()
    time.sleep(0.2)
    start_manager("results_app:plain", num_workers=1)
    waiter.join(15)
    assert got == [None]  # done; a plain job keeps no result unless queued with result_ttl
    assert 0 < client.redis.ttl(f"job:{job_id}") <= 60


def test_cancel_a_queued_job(client: Client) -> None:
    h = app.add.delay(1, 2)
    assert h.cancel() is True
    assert h.state == "cancelled"
    assert client.redis.llen("all:jobs") == 0
    with pytest.raises(JobCancelled):
        h.result(timeout=1)
    assert h.cancel() is False  # settled already


def test_cancel_a_running_job_stops_that_run_only(client: Client, start_manager: Callable,
                                                  tmp_path: Path) -> None:
    manager = start_manager(TASKS, num_workers=1)
    h = app.slow.delay(30)
    wait_for(lambda: h.state == "running", what="the job to run")
    pid = manager.worker_pids["m1:1"]
    assert h.cancel() is True
    with pytest.raises(JobCancelled):
        h.result(timeout=10)
    assert manager.worker_pids["m1:1"] == pid  # the worker goes on
    assert app.add.call(1, 1, timeout=10) == 2
    assert h.info().attempts == 1 and [e["event"] for e in h.info().history][-1] == "cancelled"


def test_a_job_that_keeps_nothing_still_shows_its_worker_and_can_be_cancelled_while_it_runs(
        client: Client, start_manager: Callable) -> None:
    # Its claim writes only the fencing token (the hot path of jobs without
    # a record); the state, the worker and the cancel are found all the same.
    manager = start_manager(TASKS, num_workers=2)
    h = app.slow.send_with(args=(30,), result_ttl=0)
    wait_for(lambda: h.state == "running", what="the job to run")
    info = h.info()
    assert info.worker in manager.worker_pids and client.redis.lpos(f"{info.worker}:jobs", h.id) is not None
    assert not client.redis.hexists(f"job:{h.id}", "qw:worker")
    assert h.cancel() is True
    with pytest.raises(JobCancelled):
        h.result(timeout=10)
    assert h.state == "cancelled"


def test_a_waiter_gets_the_rerun_result_after_its_worker_is_killed(client: Client, start_manager: Callable,
                                                                   tmp_path: Path) -> None:
    start_manager(TASKS, num_workers=1)
    h = app.die_once.delay(str(tmp_path / "marker"), "second run")
    assert h.result(timeout=20) == "second run"
    events = [e["event"] for e in h.info().history]
    assert events == ["queued", "claimed", "requeued", "claimed", "done"]
    assert h.info().attempts == 2


def test_tags_find_jobs_most_recent_first(client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    first = app.tagged.delay(1)
    second = app.add.send_with(args=(1, 1), tags=["reports", "adhoc"])
    qw.wait([first, second], timeout=10)
    found = client.find_jobs(tag="reports")
    assert [i.id for i in found] == [second.id, first.id]
    assert {i.state for i in found} == {"done"}
    assert [i.id for i in client.find_jobs(tag="adhoc")] == [second.id]
    assert client.find_jobs(tag="reports", task="results_app.tagged")[0].id == first.id


def test_a_tracked_job_keeps_its_record_until_untracked(client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    h = app.short_lived.send_with(args=(5,), track=True)
    assert h.result(timeout=10) == 5
    assert client.tracked() == [h.id]
    assert client.redis.ttl(f"job:{h.id}") == -1
    client.untrack(h.id)
    assert client.tracked() == []
    assert 0 < client.redis.ttl(f"job:{h.id}") <= 2


def test_bad_options_are_refused_at_queue_time(client: Client) -> None:
    with pytest.raises(qw.QwError, match="result_ttl must be at least 0"):
        app.add.send_with(args=(1, 2), result_ttl=-1)
    with pytest.raises(qw.QwError, match="tag 'a b'"):
        client.queue_job({"x": 1}, tags=["a b"])
    assert client.redis.dbsize() == 0


def test_history_times_are_redis_clock_and_json(client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    h = app.add.delay(2, 2)
    h.result(timeout=10)
    history = json.loads(client.redis.hget(f"job:{h.id}", "qw:history"))
    redis_now = float(client.redis.time()[0])
    assert all(abs(e["at"] - redis_now) < 30 for e in history)


def test_the_ack_that_keeps_a_result_still_claims_the_next_job_in_one_round_trip(client: Client) -> None:
    from qw import Worker

    from tests_support import commands_run

    handles = app.add.map([(n, n) for n in range(50)])
    worker = Worker(client, None, "box", name="box:1", tasks={"results_app.add": app.add})
    claimer, dispatcher = worker._setup()
    claimer.ack_id("warm-up")  # loads the claim script
    with commands_run(client.redis) as seen:
        ack = None
        while True:
            job = claimer.claim(ack)
            if job is None:
                break
            call = dispatcher.resolve(job.meta)
            job.keep, job.result = 600, json.dumps(call.run(job.id, job.data))
            ack = job
    top_level = {k: v for k, v in seen().items() if k in ("evalsha", "eval", "blmove", "script", "multi")}
    assert top_level == {"evalsha": 51}  # one per job, and one last claim that found nothing
    assert [h.result(timeout=0) for h in handles] == [2 * n for n in range(50)]


def test_cli_job_result_cancel_and_search(client: Client, start_manager: Callable, redis_server: Any) -> None:
    from conftest import run_cli

    port = ["qw-client", "--host=127.0.0.1", f"--port={redis_server.port}"]
    start_manager(TASKS, num_workers=1)
    h = app.add.send_with(args=(20, 22), tags=["cli"])
    done = run_cli(*port, "result", h.id, "--wait=10")
    assert (done.returncode, done.stdout.strip()) == (0, "42")
    shown = run_cli(*port, "job", h.id)
    assert shown.returncode == 0 and f"job {h.id}: done" in shown.stdout and "result    42" in shown.stdout
    as_json = json.loads(run_cli(*port, "job", h.id, "--json").stdout)
    assert as_json[0]["result"] == 42 and as_json[0]["tags"] == ["cli"]
    failed = app.boom.delay("from the shell")
    bad = run_cli(*port, "result", failed.id, "--wait=10")
    assert (bad.returncode, bad.stdout.strip()) == (1, "failed: ValueError: from the shell")
    missing = run_cli(*port, "result", "nope")
    assert (missing.returncode, missing.stdout.strip()) == (1, "no such job")
    slow = app.slow.delay(5)
    wait_for(lambda: slow.state == "running", what="the slow job to run")
    late = run_cli(*port, "result", slow.id, "--wait=0.2")
    assert (late.returncode, late.stdout.strip()) == (1, "not finished after 0.2 s (state: running)")
    cancelled = run_cli(*port, "cancel", slow.id, "nope")
    assert cancelled.returncode == 1
    assert cancelled.stdout.splitlines() == [f"{slow.id}: cancelled", "nope: no such job"]
    found = run_cli(*port, "jobs", "--tag=cli")
    assert found.returncode == 0 and h.id in found.stdout and "done" in found.stdout
    wrong = run_cli(*port, "jobs", "--state=finished")
    assert wrong.returncode == 1 and "unknown state 'finished'; one of: queued, scheduled" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    queued = run_cli(*port, "queue", "string", "--result-ttl=60", "--tag=a,b", "--track", '{"n": 1}')
    job_id = queued.stdout.strip()
    info = client.job(job_id).info()
    assert (info.tags, info.tracked) == (("a", "b"), True)
    assert run_cli(*port, "tracked").stdout.split() == [job_id]
    assert run_cli(*port, "untrack", job_id).stdout.strip() == f"{job_id}: untracked"


def test_a_wait_whose_connection_drops_goes_on_within_its_timeout(client: Client, start_manager: Callable) -> None:
    h = app.add.delay(6, 7)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(h.result(timeout=20)))
    waiter.start()

    def blocked() -> list[int]:
        return [c["id"] for c in client.redis.client_list() if c.get("cmd") == "blpop"]

    wait_for(lambda: blocked(), what="the waiter to block")
    for client_id in blocked():
        client.redis.client_kill_filter(_id=client_id)
    start_manager(TASKS, num_workers=1)
    waiter.join(20)
    assert got == [13]
