"""Dependencies: a job waits until each job it depends on is done, released in the step that settles
the last one; failures fail it (or not), down the graph; never stuck, never silent."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import results_app as app

import qw
from qw import Client
from qw.claim import Claimer
from qw.exceptions import JobDataError
from qw.tasks import set_default_client

from conftest import wait_for

TASKS = "results_app"


@pytest.fixture(autouse=True)
def default_client(client: Client) -> Any:
    set_default_client(client)
    yield
    set_default_client(None)


def claimer(client: Client, worker: str = "m:1") -> Claimer:
    client.register_worker(worker.split(":")[0], worker)
    return Claimer(client.redis, client.scripts, client.keys, worker.split(":")[0], worker)


def test_a_dependent_waits_then_runs_after_its_dependencies(client: Client, start_manager: Callable) -> None:
    a = app.slow.delay(0.3, "a")
    b = app.add.delay(1, 2)
    c = app.echo.send_with(args=("c",), depends_on=[a, b.id])
    assert c.state == "waiting"
    assert c.info().history[-1]["event"] == "waiting"
    start_manager(TASKS, num_workers=2)
    assert c.result(timeout=10) == "c"
    info = c.info()
    assert info.started_at >= a.info().finished_at and info.started_at >= b.info().finished_at
    events = [e["event"] for e in info.history]
    assert events[:2] == ["queued", "waiting"] and events[-3:] == ["released", "claimed", "done"]
    assert events.count("released") == 1  # the last dependency releases it; the first only counts down
    assert not client.redis.exists("all:waiting", f"all:dependents:{a.id}", f"all:dependents:{b.id}")


def test_a_dependency_already_done_counts_and_one_with_no_record_is_refused(client: Client,
                                                                           start_manager: Callable) -> None:
    start_manager(TASKS, num_workers=1)
    done = app.add.delay(2, 2)
    done.result(timeout=10)
    after = app.echo.send_with(args=("after",), depends_on=[done])
    assert after.result(timeout=10) == "after"
    with pytest.raises(JobDataError, match="dependency nope has no record"):
        app.echo.send_with(args=("x",), depends_on=["nope"])
    assert client.redis.zcard("all:waiting") == 0


def test_a_failed_dependency_fails_its_dependents_down_the_graph(client: Client, start_manager: Callable) -> None:
    bad = app.boom.delay("broken")
    child = app.echo.send_with(args=("child",), depends_on=[bad])
    grandchild = app.echo.send_with(args=("grandchild",), depends_on=[child])
    start_manager(TASKS, num_workers=1)
    with pytest.raises(qw.JobFailed, match=f"dependency {bad.id} failed: ValueError: broken"):
        child.result(timeout=10)
    with pytest.raises(qw.JobFailed, match=f"dependency {child.id} failed: dependency {bad.id} failed"):
        grandchild.result(timeout=10)
    failed = {f.id for f in client.get_failed_jobs()}
    assert {bad.id, child.id, grandchild.id} <= failed
    assert client.redis.zcard("all:waiting") == 0


def test_run_anyway_tells_the_job_which_dependencies_failed(client: Client, start_manager: Callable) -> None:
    bad = app.boom.delay("broken")
    good = app.add.delay(1, 1)
    job_id = client.queue_job({"return": 1}, depends_on=[bad, good], on_dependency_failure="run",
                              result_ttl=60)
    start_manager("results_app:plain", tasks=[TASKS], num_workers=1)
    assert client.job(job_id).result(timeout=10) == 1
    assert client.redis.hget(f"job:{job_id}", "qw:failed_deps") == f'["{bad.id}"]'.encode()


def test_cancelling_a_dependency_fails_its_dependent_and_a_waiting_job_can_be_cancelled(client: Client) -> None:
    first = app.add.delay(1, 1)
    dependent = app.add.send_with(args=(2, 2), depends_on=[first])
    assert first.cancel() is True
    assert dependent.state == "failed"
    assert dependent.info().error == f"dependency {first.id} was cancelled"
    other = app.add.delay(3, 3)
    waiting = app.add.send_with(args=(4, 4), depends_on=[other])
    assert waiting.cancel() is True and waiting.state == "cancelled"
    assert client.redis.zcard("all:waiting") == 0
    c = claimer(client)
    job = c.claim()
    assert job.id == other.id
    c.claim(job)  # done: releases nobody (the dependent was cancelled), and leaves nothing behind
    assert not client.redis.exists(f"all:dependents:{other.id}")


def test_a_dependency_finishing_during_registration_is_not_missed(client: Client) -> None:
    c = claimer(client)
    dependencies = [app.add.delay(n, n) for n in range(200)]
    registered: list[Any] = []
    thread = threading.Thread(target=lambda: registered.extend(
        app.echo.send_with(args=(i,), depends_on=[dependencies[i]], queue="later") for i in range(200)))
    thread.start()
    ack = None
    for _ in range(200):
        ack = c.claim(ack)
        ack.keep = 600  # as a worker does for a task job: its record stays, for dependents to find
    thread.join(10)
    c.claim(ack)
    assert len(registered) == 200
    states = {h.state for h in registered}
    assert states == {"queued"}, states  # every one released, whether its dependency ended before or after
    assert client.redis.llen("all:queue:later") == 200
    assert client.redis.zcard("all:waiting") == 0


def test_a_dependency_killed_mid_run_releases_once_after_its_rerun(client: Client, start_manager: Callable,
                                                                   tmp_path: Path) -> None:
    dependency = app.die_once.delay(str(tmp_path / "marker"), "second")
    dependent = app.echo.send_with(args=("then",), depends_on=[dependency])
    start_manager(TASKS, num_workers=1)
    assert dependent.result(timeout=20) == "then"
    assert dependency.info().attempts == 2
    assert [e["event"] for e in dependent.info().history].count("released") == 1


def test_a_large_fan_out_is_released_in_batches_and_finished_by_the_manager(client: Client,
                                                                            start_manager: Callable) -> None:
    root = app.add.delay(0, 0)
    ids = [client.queue_job({"n": n}, depends_on=[root]) for n in range(2500)]
    c = claimer(client)
    job = c.claim()
    assert job.id == root.id
    c.ack(job)  # settles 1,000 dependents in this step; the rest wait for a manager
    assert client.redis.zcard("all:waiting") == 1500
    assert client.redis.hexists("all:releasing", root.id)
    start_manager("results_app:plain", num_workers=1)
    wait_for(lambda: client.redis.zcard("all:waiting") == 0, what="the managers to finish the release")
    assert not client.redis.exists("all:releasing", f"all:dependents:{root.id}")
    assert len(ids) == 2500


def test_releasing_dependents_adds_no_round_trip(client: Client) -> None:
    from qw import Worker

    from tests_support import commands_run

    roots = app.add.map([(n, n) for n in range(50)])
    for root in roots:
        app.echo.send_with(args=("after",), depends_on=[root], queue="later")
    worker = Worker(client, None, "box", name="box:1", tasks={"results_app.add": app.add})
    claimer_, dispatcher = worker._setup()
    claimer_.ack_id("warm-up")
    with commands_run(client.redis) as seen:
        ack = None
        while True:
            job = claimer_.claim(ack)
            if job is None:
                break
            job.keep, job.result = 600, "1"
            ack = job
    top_level = {k: v for k, v in seen().items() if k in ("evalsha", "eval", "blmove", "script", "multi")}
    assert top_level == {"evalsha": 51}  # one per job, and the last claim that found nothing
    assert client.redis.llen("all:queue:later") == 50 and client.redis.zcard("all:waiting") == 0
