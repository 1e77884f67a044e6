"""Recurring schedules against the real server: defined in Redis, fired once per due time whatever the
number of managers, catch-up after fires every manager missed, no_overlap, @qw.periodic, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import time_app

from qw import Client
from qw import recurring as rec
from qw.duties.scheduler import PromoteDue
from qw.exceptions import ConfigError

from conftest import run_cli, wait_for
from tests_support import lasting_keys


def redis_now(client: Client) -> float:
    seconds, micros = client.redis.time()
    return seconds + micros / 1e6


def step(client: Client) -> None:
    """One run of a manager's scheduler, without a manager."""
    duty = PromoteDue(client, "test")
    try:
        duty.run()
    finally:
        duty.close()


def test_every_due_time_fires_once_across_three_managers(start_manager, client: Client, tmp_path: Path) -> None:
    for name in ("m1", "m2", "m3"):
        start_manager("time_app", name=name, num_workers=1)
    assert client.recur("beat", task="time_app.stamp", args=[str(tmp_path)], every=0.2) == "created"
    wait_for(lambda: len(time_app.runs(tmp_path)) >= 10, timeout=15, what="10 fires")
    client.unrecur("beat")
    runs = time_app.runs(tmp_path)
    dues = sorted(r["due"] for r in runs)
    assert len(dues) == len(set(dues)), "a due time fired twice"
    steps = [round(b - a, 3) for a, b in zip(dues, dues[1:])]
    assert all(s == 0.2 for s in steps), steps  # none missed either
    for run in runs:
        assert run["schedule"] == "beat" and run["id"] == rec.run_id("beat", run["due"])
    late = sorted(r["started"] - r["due"] for r in runs)
    assert late[0] >= 0 and late[len(late) // 2] < 0.02 and late[-1] < 0.2, late
    assert all(r["name"] != "beat" for r in client.recurring())  # removed


def test_a_fire_checks_the_due_time_it_expects(client: Client) -> None:
    client.recur("once", data={"n": 1}, every=3600)
    schedule = rec.get(client._store, "once")
    version = client.redis.hget("all:recurring:once", "version").decode()
    due = client.redis.zscore("all:recurring", "once")
    what = rec.plan(schedule.rule, due, due)
    assert rec.fire(client._store, client._producer, schedule, version, due, what) == 1
    # A second manager that read the same due time changes nothing.
    assert rec.fire(client._store, client._producer, schedule, version, due, what) == -1
    assert client.get_all_queued_jobs() == [rec.run_id("once", due)]
    assert client.redis.zscore("all:recurring", "once") == due + 3600


def _fall_behind(client: Client, name: str, fires: int, every: float) -> float:
    """Pretend every manager was down for ``fires`` fire times: the schedule still waits for an old one."""
    nxt = client.redis.zscore("all:recurring", name)
    old = round(nxt - fires * every, 3)
    client.redis.zadd("all:recurring", {name: old})
    return old


def test_missed_fires_follow_the_catchup_policy(client: Client) -> None:
    client.recur("skipper", data={"p": "skip"}, every=1)
    client.recur("latest", data={"p": "latest"}, every=1, catchup="latest")
    client.recur("all", data={"p": "all"}, every=1, catchup="all", max_catchup=3)
    for name in ("skipper", "latest", "all"):
        _fall_behind(client, name, 10, 1)
    step(client)
    queued = client.get_all_queued_jobs()
    by_schedule: dict[str, list[str]] = {}
    for job_id in queued:
        by_schedule.setdefault(job_id.split("@")[0], []).append(job_id)
    assert "skipper" not in by_schedule
    assert len(by_schedule["latest"]) == 1 and len(by_schedule["all"]) == 3
    now = redis_now(client)
    rows = {r["name"]: r for r in client.recurring()}
    assert all(now < rows[n]["next"] <= now + 1 for n in rows)
    assert rows["skipper"]["missed"] >= 9 and rows["all"]["fired"] == 3


def test_no_overlap_skips_a_fire_while_the_last_run_is_unfinished(client: Client) -> None:
    client.recur("lonely", data={"x": 1}, every=3600, no_overlap=True)
    client.redis.zadd("all:recurring", {"lonely": round(redis_now(client) - 0.001, 3)})  # due now
    step(client)
    [first] = client.get_all_queued_jobs()
    client.redis.zadd("all:recurring", {"lonely": round(redis_now(client) - 0.001, 3)})  # due again, the run still queued
    step(client)
    [row] = client.recurring()
    assert client.get_all_queued_jobs() == [first] and row["skipped_overlaps"] == 1 and row["fired"] == 1
    assert row["last_outcome"] == "queued"
    client.redis.delete(f"job:{first}")  # it finished
    client.redis.zadd("all:recurring", {"lonely": round(redis_now(client) - 0.001, 3)})
    step(client)
    assert len(client.get_all_queued_jobs()) == 2


def test_define_list_pause_resume_run_now_remove(client: Client) -> None:
    assert client.recur("report", data={"kind": "daily"}, cron="30 6 * * 1-5", tz="America/New_York",
                        queue="reports", catchup="skip", no_overlap=True) == "created"
    assert client.recur("report", data={"kind": "daily"}, cron="30 6 * * 1-5", tz="America/New_York",
                        queue="reports", catchup="skip", no_overlap=True) == "unchanged"
    assert client.recur("report", data={"kind": "daily"}, cron="30 7 * * 1-5", tz="America/New_York",
                        queue="reports", catchup="skip", no_overlap=True) == "replaced"
    [row] = client.recurring()
    assert row["when"] == "cron 30 7 * * 1-5 America/New_York" and row["queue"] == "reports"
    assert row["next"] > redis_now(client) and row["last"] is None and row["paused"] is False
    nxt = row["next"]
    job_id = client.run_recurring_now("report")
    assert job_id.startswith("report@") and client.redis.lrange("all:queue:reports", 0, -1) == [job_id.encode()]
    assert client.get_job(job_id) == {"kind": "daily"}
    [row] = client.recurring()
    assert row["next"] == nxt and row["last_job"] == job_id and row["fired"] == 1
    client.pause_recurring("report")
    [row] = client.recurring()
    assert row["paused"] and row["next"] is None
    assert client.redis.zscore("all:recurring", "report") == float("inf")
    client.resume_recurring("report")
    [row] = client.recurring()
    assert not row["paused"] and row["next"] == nxt
    assert client.unrecur("report") and not client.unrecur("report")
    assert client.recurring() == []
    with pytest.raises(ConfigError, match="no recurring schedule called 'report'"):
        client.pause_recurring("report")


def test_a_task_schedule_queues_the_call(client: Client) -> None:
    client.recur("maintenance", task="ops.sweep", kwargs={"tasks": ["sweep", "mop"]}, every=86400, offset=3600)
    [row] = client.recurring()
    assert row["when"] == "every 86400 s (+3600 s)" and row["next"] % 86400 == 3600
    job_id = client.run_recurring_now("maintenance")
    stored = client.redis.hgetall(f"job:{job_id}")
    assert stored[b"qw:task"] == b"ops.sweep" and stored[b"qw:kwargs"] == b'{"tasks":["sweep","mop"]}'
    assert stored[b"qw:recur"] == b"maintenance"


def test_a_periodic_task_is_written_by_the_manager_that_loads_it(start_manager, client: Client, tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setenv("QW_TEST_DIR", str(tmp_path))
    start_manager("periodic_app", num_workers=1)
    [row] = client.recurring()
    assert row["name"] == "periodic_app.tick" and row["task"] == "periodic_app.tick" and row["no_overlap"]
    wait_for(lambda: len(time_app.runs(tmp_path)) >= 2, timeout=10, what="two ticks")
    assert {r["schedule"] for r in time_app.runs(tmp_path)} == {"periodic_app.tick"}
    client.unrecur("periodic_app.tick")


@pytest.mark.parametrize(("args", "message"), [
    (["bad name", "--every=5", '{"n": 1}'], "may hold only letters"),
    (["x:y", "--every=5", '{"n": 1}'], "may hold only letters"),
    (["r", "--cron=61 * * * *", '{"n": 1}'], "bad minute field '61'"),
    (["r", "--cron=0 3 * * *", "--tz=Mars/Olympus", '{"n": 1}'], "unknown time zone 'Mars/Olympus'"),
    (["r", "--every=0", '{"n": 1}'], "every must be positive"),
    (["r", "--every=60", "--offset=60", '{"n": 1}'], "offset must be at least 0 and smaller than every"),
    (["r", "--every=60", "--catchup=some", '{"n": 1}'], "unknown catch-up policy 'some'"),
    (["r", "--every=60", "--task=ops.sweep", '{"n": 1}', "m1"], "--task=<name> or <data>, one of them"),
    (["r", "--every=60"], "--task=<name> or <data>, one of them"),
])
def test_cli_bad_schedules_are_one_line_and_write_nothing(client: Client, redis_server, args: list[str],
                                                          message: str) -> None:
    out = run_cli("qw-client", "--port", str(redis_server.port), "recur", "add", *args)
    assert out.returncode == 1, out
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert lasting_keys(client) == []


def test_cli_recur_commands(client: Client, redis_server) -> None:
    port = str(redis_server.port)

    def cli(*args: str) -> str:
        out = run_cli("qw-client", "--port", port, "recur", *args)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert cli("add", "sweep", "--every=3600", "--task=ops.sweep", '--args=["now"]', "--no-overlap",
               "--queue=ops") == "schedule sweep: created\n"
    assert cli("add", "nightly", "--cron=0 3 * * *", "--tz=Europe/Paris", '{"kind": "nightly"}', "m1") \
        == "schedule nightly: created\n"
    listing = cli("list")
    assert "sweep" in listing and "every 3600 s" in listing and "cron 0 3 * * * Europe/Paris" in listing
    job_id = cli("run", "nightly").strip()
    assert client.get_manager_queued_jobs("m1") == [job_id]
    assert cli("pause", "sweep") == "schedule sweep: paused\n" and "paused" in cli("list")
    assert cli("resume", "sweep") == "schedule sweep: resumed\n"
    info = run_cli("qw-client", "--port", port, "info")
    assert "nightly" in info.stdout and "sweep" in info.stdout
    assert cli("remove", "sweep") == "schedule sweep: removed\n"
    out = run_cli("qw-client", "--port", port, "recur", "remove", "sweep")
    assert out.returncode == 1 and "no recurring schedule called 'sweep'" in out.stderr


def test_a_periodic_declaration_is_checked_at_import() -> None:
    import qw

    with pytest.raises(ConfigError, match="bad minute field '61'"):
        qw.periodic(cron="61 * * * *")
    with pytest.raises(ConfigError, match="unknown catch-up policy"):
        qw.periodic(every=5, catchup="never")
    with pytest.raises(ConfigError, match="needs its schedule"):
        qw.periodic(lambda: None)
    with pytest.raises(ConfigError, match="is called with no arguments"):
        @qw.periodic(every=5, name="needs.an.argument")
        def needs(x: int) -> None: ...


def test_a_changed_definition_is_read_again_before_it_fires(client: Client) -> None:
    client.recur("changing", data={"v": 1}, every=3600)
    client.redis.zadd("all:recurring", {"changing": round(redis_now(client) - 0.001, 3)})
    step(client)  # fires, and the scheduler keeps the definition it read
    assert client.recur("changing", data={"v": 2}, every=3600) == "replaced"
    client.redis.zadd("all:recurring", {"changing": round(redis_now(client) - 0.001, 3)})
    step(client)
    assert sorted(client.get_job(j)["v"] for j in client.get_all_queued_jobs()) == [1, 2]
