"""Chains, groups with a callback, and joined jobs, run by real workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import results_app as app

import qw
from qw import Client
from qw.tasks import set_default_client

TASKS = "results_app"


@pytest.fixture(autouse=True)
def default_client(client: Client) -> Any:
    set_default_client(client)
    yield
    set_default_client(None)


def test_a_chain_passes_each_result_to_the_next_step(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=2)
    last = qw.chain(app.add.s(1, 2), app.double.s(), app.add.s(10)).delay()
    assert last.result(timeout=10) == 16  # add(1, 2) = 3, double(3) = 6, add(6, 10) = 16


def test_a_chain_stops_at_the_first_failure(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    last = qw.chain(app.boom.s("no"), app.double.s(), app.double.s()).delay()
    with pytest.raises(qw.JobFailed, match="dependency .* failed: dependency .* failed: ValueError: no"):
        last.result(timeout=10)


def test_a_group_callback_gets_every_result_in_order(client: Client, start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=2)
    members = qw.group(app.slow.s(0.01 * (5 - n), n) for n in range(6))  # later members finish first
    callback = members.then(app.total.s(plus=100)).delay()
    assert callback.result(timeout=15) == 100 + sum(range(6))
    handles = qw.group(app.double.s(n) for n in range(4)).delay()
    assert handles.results(timeout=10) == [0, 2, 4, 6]
    assert handles.state == "done"


def test_a_member_that_fails_fails_the_callback_or_runs_it_per_the_policy(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=2)
    failing = qw.group([app.double.s(1), app.boom.s("member")]).then(app.total.s()).delay()
    with pytest.raises(qw.JobFailed, match="ValueError: member"):
        failing.result(timeout=10)
    anyway = qw.group([app.double.s(1), app.boom.s("member")]).then(
        app.echo.s().options(on_dependency_failure="run")).delay()
    assert anyway.result(timeout=10) == [2, None]


def test_a_chord_whose_member_is_retried_runs_its_callback_once(start_manager: Callable,
                                                               tmp_path: Path) -> None:
    start_manager(TASKS, num_workers=2, backoff=0.05)
    chord = qw.group([app.flaky.s(str(tmp_path / "m"), 5), app.double.s(3)]).then(app.total.s())
    callback = chord.delay()
    assert callback.result(timeout=15) == 11
    assert chord.members.handles[0].info().attempts == 2
    assert [e["event"] for e in callback.info().history].count("claimed") == 1


def test_a_joined_job_runs_its_calls_in_sequence_in_one_job(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    joined = (app.add.s(1, 1) & app.double.s(21) & app.echo.s("x")).delay()
    assert joined.result(timeout=10) == [2, 42, "x"]
    assert joined.info().task == "qw.joined"


def test_a_joined_job_obeys_the_manager_rules(start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    refused = (app.add.s(1, 1) & qw.flow.Signature("os:remove", ("/tmp/x",))).delay()
    with pytest.raises(qw.JobFailed, match="import path 'os:remove' is not allowed"):
        refused.result(timeout=10)


def test_a_pipeline_moves_one_job_from_queue_to_queue(client: Client, start_manager: Callable) -> None:
    start_manager("results_app:Pipeline", num_workers=1, queues=["underpants", "profit", "all"])
    job_id = client.queue_job({"start": 1}, result_ttl=60)
    assert client.job(job_id).result(timeout=10) == ["process", "underpants", "profit"]
    events = [(e["event"], e.get("next", "")) for e in client.job(job_id).info().history]
    assert events == [("queued", ""), ("claimed", ""), ("completed", "all:queue:underpants"), ("claimed", ""),
                      ("completed", "all:queue:profit"), ("claimed", ""), ("done", "")]


def test_complete_outside_a_running_job_says_so() -> None:
    from qw.claim import Job

    with pytest.raises(RuntimeError, match="complete\\(\\) is for the job a worker is running now"):
        Job("x", {}, 1).complete(next="profit")


def test_a_time_scheduler_runs_a_joined_job_on_a_schedule(client: Client, start_manager: Callable) -> None:
    from datetime import timedelta

    start_manager(TASKS, num_workers=1)
    with qw.TimeScheduler(client, timedelta(seconds=0.5), name="both") as s:
        s << app.add.s(1, 2)
        s << (app.double.s(4) & app.echo.s("x"))
    assert s.flushed == "created"
    listed = {r["name"]: r for r in client.recurring()}
    assert listed["both"]["task"] == "qw.joined"
    import time
    deadline = time.monotonic() + 10
    runs = []
    while time.monotonic() < deadline and len(runs) < 2:
        runs = [i for i in client.find_jobs(state="done", task="qw.joined")]
        time.sleep(0.1)
    assert len(runs) >= 2 and all(i.result == [3, 8, "x"] for i in runs)
    client.unrecur("both")


def test_a_callback_queued_after_its_many_members_are_done_gets_all_their_results(client: Client,
                                                                                   start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=2)
    members = app.double.map([(n,) for n in range(1500)])
    qw.wait(members, timeout=30)
    callback = qw.flow._queue(app.total.s().call(depends_on=tuple(h.id for h in members), collect="group"),
                              client, None)
    assert callback.result(timeout=10) == sum(2 * n for n in range(1500))
