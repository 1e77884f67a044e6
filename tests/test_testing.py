"""qw.testing.immediate(): tasks inline, with results, states, retries and exceptions; and the worker hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import immediate_app as app
import pytest

import qw
from qw import hooks
from qw.defaults import peek_default_client, set_default_client
from qw.exceptions import JobDataError

from conftest import wait_for


def test_immediate_runs_the_task_here_and_the_handle_has_its_result() -> None:
    before = peek_default_client()
    with qw.testing.immediate() as jobs:
        handle = app.add.delay(4, 5)
        assert handle.state == "done" and handle.result() == 9 and handle.attempts == 1
        assert app.add.call(1, 2) == 3
        assert [h.result() for h in app.add.map([(1, 1), (2, 2)])] == [2, 4]
        assert app.add.send_with((3, 3), queue="elsewhere").result() == 6
        assert app.pid.delay_now().result() == __import__("os").getpid()
        assert jobs.jobs[handle.id].args == [4, 5]
    assert peek_default_client() is before


def test_immediate_counts_retries_and_raises_the_tasks_own_exception() -> None:
    with qw.testing.immediate():
        assert app.flaky.delay("twice", 2).attempts == 3
        with pytest.raises(qw.Retry):  # asks again on its last attempt: fails
            app.flaky.delay("always", 10)
        assert app.runs["always"] == 3
        with pytest.raises(ValueError, match="no stock"):
            app.boom.delay("no stock")
    with qw.testing.immediate(propagate=False):
        handle = app.boom.delay("later")
        assert handle.state == "failed"
        with pytest.raises(ValueError, match="later"):
            handle.result()


def test_immediate_refuses_what_redis_could_not_carry() -> None:
    with qw.testing.immediate(), pytest.raises(JobDataError, match="argument 1 of immediate.add is not JSON"):
        app.add.delay(object(), 1)
    with qw.testing.immediate(), pytest.raises(TypeError):  # a result that is not JSON fails the job
        app.opaque.delay()


@pytest.fixture
def hooks_log(tmp_path: Path) -> Iterator[Path]:
    saved = {kind: list(fns) for kind, fns in hooks._hooks.items()}
    app.HOOKS_LOG = str(tmp_path / "hooks.txt")
    qw.on_worker_start(app.on_start)
    qw.on_worker_stop(app.on_stop)
    hooks.before_job(app.before)
    hooks.after_job(app.after)
    yield tmp_path / "hooks.txt"
    hooks._hooks.update(saved)
    app.HOOKS_LOG = ""


def test_worker_hooks_run_in_each_worker_and_around_each_job(client: qw.Client, start_manager: Callable,
                                                             hooks_log: Path) -> None:
    set_default_client(client)
    try:
        manager = start_manager("immediate_app", num_workers=2, name="hooked")
        pids = {app.pid.call(timeout=10) for _ in range(4)}
        manager.request_stop()
        manager.join(15)
    finally:
        set_default_client(None)
    wait_for(lambda: hooks_log.read_text().count("stop ") == 2, what="both workers' stop hooks")
    lines = hooks_log.read_text().split("\n")
    workers = {int(line.split()[1]) for line in lines if line.startswith("start ")}
    assert len(workers) == 2 and pids <= workers
    assert {int(line.split()[1]) for line in lines if line.startswith("stop ")} == workers
    assert sum(line.startswith("before ") for line in lines) == 4
    assert sum(line.startswith("after ") for line in lines) == 4


def test_a_hook_must_be_callable() -> None:
    with pytest.raises(TypeError):
        qw.on_worker_start("not a function")  # type: ignore[arg-type]


def test_a_failing_hook_is_logged_and_the_rest_run(caplog: Any) -> None:
    seen = []
    saved = {kind: list(fns) for kind, fns in hooks._hooks.items()}
    try:
        hooks.before_job(lambda: 1 / 0)
        hooks.before_job(lambda: seen.append(1))
        hooks.run("before")
    finally:
        hooks._hooks.update(saved)
    assert seen == [1] and "failed" in caplog.text


def test_immediate_runs_chains_and_groups_passing_results_on() -> None:
    with qw.testing.immediate():
        assert qw.chain(app.add.s(1, 2), app.add.s(10)).delay().result() == 13
        assert qw.group([app.add.s(1, 1), app.add.s(2, 2)]).delay().results() == [2, 4]
        assert (qw.group([app.add.s(1, 1), app.add.s(2, 2)]).then(app.total.s())).delay().result() == 6
