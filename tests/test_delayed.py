"""Delayed jobs (delay=, at=) and retries: scheduled on Redis's clock, moved to their queue on time by
a manager's scheduler, whatever their routing; the scheduler's cost while idle; a backlog in batches."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import wait
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_app

from qw import Client
from qw.call import Call
from qw.claim import RETRYING, Claimer, promote_due
from qw.duties.scheduler import PromoteDue
from qw.exceptions import ConfigError, JobDataError

from conftest import run_cli, wait_for
from tests_support import commands_run, lasting_keys


def due_of(client: Client, job_id: str) -> float:
    score = client.redis.zscore("all:scheduled", job_id)
    assert score is not None, f"{job_id} is not scheduled"
    return score


def redis_now(client: Client) -> float:
    seconds, micros = client.redis.time()
    return seconds + micros / 1e6


def state(client: Client, job_id: str) -> str:
    return (client.redis.hget(f"job:{job_id}", "qw:state") or b"").decode()


def test_a_delayed_job_waits_scheduled_then_runs_on_time(start_manager, client: Client, tmp_path: Path) -> None:
    start_manager("time_app:target")
    before = redis_now(client)
    job_id = client.queue_job({"dir": str(tmp_path)}, delay=0.4)
    due = due_of(client, job_id)
    assert before + 0.4 <= due <= redis_now(client) + 0.4  # Redis's clock, not this host's
    assert state(client, job_id) == "scheduled"
    assert client.get_all_queued_jobs() == [] and client.get_job(job_id) == {"dir": str(tmp_path)}
    wait_for(lambda: time_app.runs(tmp_path), what="the delayed job's run")
    [run] = time_app.runs(tmp_path)
    assert run["id"] == job_id and 0 <= run["started"] - due < 0.1


def test_delayed_jobs_start_within_milliseconds_of_their_due_time(start_manager, client: Client,
                                                                 tmp_path: Path) -> None:
    start_manager("time_app", num_workers=2)
    ids = [time_app.stamp.send_with((str(tmp_path),), delay=0.2 + 0.037 * i, client=client).id
           for i in range(20)]
    dues = {job_id: due_of(client, job_id) for job_id in ids}
    wait_for(lambda: len(time_app.runs(tmp_path)) == 20, timeout=15, what="20 runs")
    late = sorted(run["started"] - dues[run["id"]] for run in time_app.runs(tmp_path))
    # Generous bounds for a shared test machine; scripts/lateness.py measures it properly.
    assert late[0] >= 0 and statistics.median(late) < 0.02 and late[-1] < 0.2, late


def test_a_retry_is_due_exactly_its_delay_after_the_failure(start_manager, client: Client, tmp_path: Path) -> None:
    start_manager("time_app", num_workers=1)
    time_app.flaky.send_with((str(tmp_path), 0.3), client=client)
    wait_for(lambda: len(time_app.runs(tmp_path)) == 2, what="the retry")
    first, second = time_app.runs(tmp_path)
    assert second["attempt"] == 2 and 0.3 <= second["started"] - first["started"] < 0.4


def test_the_retry_delay_counts_from_redis_time_and_wakes_the_scheduler(client: Client) -> None:
    client.register_worker("m1", "m1:1")
    client.queue_job({"x": 1})
    claimer = Claimer(client.redis, client.scripts, client.keys, "m1", "m1:1")
    job = claimer.claim()
    before = redis_now(client)
    assert claimer.fail(job, "boom", retry_in=0.5, max_attempts=3) == RETRYING
    assert before + 0.5 <= due_of(client, job.id) <= redis_now(client) + 0.5
    assert client.redis.lrange("all:scheduled:wake", 0, -1) == [b"1"] and client.redis.ttl("all:scheduled:wake") > 0


def test_at_in_the_past_runs_now_and_a_naive_datetime_is_refused(client: Client) -> None:
    with pytest.raises(JobDataError, match="has no time zone"):
        client.queue_job({"x": 1}, at=datetime(2026, 12, 24, 9))
    with pytest.raises(JobDataError, match="has no time zone"):
        time_app.stamp.send_with(("/tmp",), at=datetime(2026, 12, 24, 9), client=client)
    with pytest.raises(ConfigError, match="delay or at, not both"):
        client.queue_job({"x": 1}, delay=1, at=datetime(2026, 12, 24, 9, tzinfo=timezone.utc))
    with pytest.raises(ConfigError, match="0 or more seconds"):
        client.queue_job({"x": 1}, delay=-1)
    assert lasting_keys(client) == []
    paris = datetime(2026, 12, 24, 9, tzinfo=ZoneInfo("Europe/Paris"))
    later = client.queue_job({"x": 1}, at=paris)
    assert due_of(client, later) == paris.timestamp()
    past = client.queue_job({"x": 2}, at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert promote_due(client.redis, client.scripts, client.keys) == 1
    assert client.get_all_queued_jobs() == [past] and state(client, past) == "queued"
    assert [job_id for job_id, _ in client.get_scheduled_jobs()] == [later]


def test_a_delayed_job_keeps_its_routing_and_options(client: Client) -> None:
    client.register_worker("box", "box:1")
    named = client.queue_job({"q": 1}, queue="reports", delay=0, max_attempts=7, timeout=30)
    mine = client.queue_job({"m": 1}, manager="box", delay=0)
    worker = client.queue_job({"w": 1}, worker="box:1", delay=0)
    gone = client.queue_job({"w": 2}, worker="box:9", delay=0)  # not registered when due: its manager's queue
    task = time_app.stamp.send_with(("/tmp",), queue="reports", delay=timedelta(0), client=client).id
    assert promote_due(client.redis, client.scripts, client.keys) == 5
    assert set(client.redis.lrange("all:queue:reports", 0, -1)) == {named.encode(), task.encode()}
    assert set(client.get_manager_queued_jobs("box")) == {mine, gone}
    assert client.get_worker_pending_jobs("box:1") == [worker]
    stored = client.redis.hgetall(f"job:{named}")
    assert stored[b"qw:max_attempts"] == b"7" and stored[b"qw:timeout"] == b"30.0" and stored[b"qw:state"] == b"queued"
    assert client.redis.hget(f"job:{task}", "qw:task") == b"time_app.stamp"


def test_every_way_to_delay(client: Client) -> None:
    ids = [
        time_app.stamp.send_with(("/tmp",), delay=60, client=client).id,
        client.submit("time_app.stamp", ["/tmp"], delay=60).id,
        client.queue_call(Call("time_app.stamp", ["/tmp"], delay=timedelta(minutes=1))),
        *client.queue_jobs([{"n": 1}, {"n": 2}], delay=60),
    ]
    assert {job_id for job_id, _ in client.get_scheduled_jobs()} == set(ids)
    assert all(state(client, job_id) == "scheduled" for job_id in ids)
    assert client.get_all_queued_jobs() == []


def test_fire_at_uses_the_default_client(client: Client) -> None:
    import qw.tasks

    qw.tasks.set_default_client(client)
    try:
        handle = time_app.stamp.fire_at(timedelta(seconds=60), "/tmp")
    finally:
        qw.tasks.set_default_client(None)
    assert client.redis.zscore("all:scheduled", handle.id) is not None


def test_queue_jobs_with_a_delay_is_one_round_trip_per_batch(client: Client) -> None:
    client.queue_jobs([{"warm": 1}], delay=60)
    with commands_run(client.redis) as seen:
        ids = client.queue_jobs(({"n": n} for n in range(500)), delay=60)
    assert len(ids) == 500 and client.redis.zcard("all:scheduled") == 501
    assert seen().get("evalsha") == 1


def test_a_backlog_of_due_jobs_moves_in_batches(client: Client) -> None:
    client.queue_jobs(({"n": n} for n in range(10_000)), at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    duty = PromoteDue(client, "m1")
    try:
        with commands_run(client.redis) as seen:
            begun = time.monotonic()
            duty.run()
            took = time.monotonic() - begun
        assert client.redis.llen("all:jobs") == 10_000 and client.redis.zcard("all:scheduled") == 0
        assert seen()["evalsha"] >= 20  # no script moved more than a batch of 500
        assert took < 2.0, took
    finally:
        duty.close()


def _loop(duty: PromoteDue, seconds: float) -> None:
    """The supervising loop's part for one duty: wait on its socket until it is due, run it."""
    end = time.monotonic() + seconds
    due = time.monotonic()
    while time.monotonic() < end:
        if time.monotonic() >= due:
            duty.run()
            due = time.monotonic() + (duty.every or 0.0)
        fd = duty.fileno()
        timeout = max(0.0, min(due, end) - time.monotonic())
        if fd is not None and wait([fd], timeout=timeout):
            duty.on_readable()
            due = time.monotonic() + (duty.every or 0.0)
        elif fd is None:
            time.sleep(timeout)


def test_an_idle_scheduler_sends_a_few_commands_a_second(client: Client) -> None:
    client.queue_jobs(({"n": n} for n in range(1000)), delay=3600)  # far ahead: no work
    duty = PromoteDue(client, "m1")
    try:
        _loop(duty, 0.5)
        with commands_run(client.redis) as seen:
            _loop(duty, 3.0)
        counts = seen()
        # What the duty sends; Redis also counts the commands run inside its script.
        sent = counts.get("evalsha", 0) + counts.get("blpop", 0)
        assert 1 <= sent <= 2 * 3, counts
        assert set(counts) <= {"evalsha", "blpop", "info", "time", "zrangebyscore", "zrange"}, counts
    finally:
        duty.close()


def test_a_job_scheduled_sooner_wakes_the_scheduler(client: Client) -> None:
    client.queue_job({"far": 1}, delay=3600)
    duty = PromoteDue(client, "m1")
    try:
        _loop(duty, 0.3)  # it now sleeps toward the far job, a second at a time
        soon = client.queue_job({"soon": 1}, delay=0.05)
        due = due_of(client, soon)
        _loop(duty, 0.3)
        assert client.get_all_queued_jobs() == [soon]
        # Moved on time, not at the next one-second read (the job's queued time is its hash's).
        assert state(client, soon) == "queued" and due <= redis_now(client)
    finally:
        duty.close()


def test_cli_queue_with_delay_and_at(client: Client, redis_server) -> None:
    port = str(redis_server.port)
    out = run_cli("qw-client", "--port", port, "queue", "string", "--delay=60", '{"n": 1}')
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert state(client, job_id) == "scheduled"
    out = run_cli("qw-client", "--port", port, "queue", "string", "--at=2026-12-24T09:00:00+01:00", '{"n": 2}')
    assert out.returncode == 0, out.stderr
    assert due_of(client, out.stdout.strip()) == datetime(2026, 12, 24, 8, tzinfo=timezone.utc).timestamp()
    out = run_cli("qw-client", "--port", port, "queue", "task", "--delay=60", "time_app.stamp", '["/tmp"]')
    assert out.returncode == 0, out.stderr
    assert state(client, out.stdout.strip()) == "scheduled"
    jobs = run_cli("qw-client", "--port", port, "jobs")
    assert "scheduled (delayed, or waiting for a retry): 3" in jobs.stdout and job_id in jobs.stdout


@pytest.mark.parametrize(("option", "message"), [
    ("--at=2026-12-24T09:00:00", "has no time zone"),
    ("--at=tomorrow", "is not an ISO 8601 time"),
    ("--delay=-5", "must not be negative"),
    ("--delay=soon", "must be a number of seconds"),
])
def test_cli_bad_times_are_one_line_and_queue_nothing(client: Client, redis_server, option: str,
                                                       message: str) -> None:
    out = run_cli("qw-client", "--port", str(redis_server.port), "queue", "string", option, '{"n": 1}')
    assert out.returncode == 1 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert lasting_keys(client) == []
