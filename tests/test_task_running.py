"""Workers run tasks: by name with their arguments, from named queues in order, under the allowlist.

Jobs here are queued as a plain producer in any language would (HSET the
hash, LPUSH the id, in one MULTI; redis-cli too), so these tests also pin
the wire format the README documents.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import pytest

from qw import Client
from qw.claim import FAILED, RETRYING, Claimer, Job, promote_due
from qw.recovery import requeue
from qw.tasks import set_default_client

from conftest import RedisServer, cli_env, wait_for

CODE = "tasks_app"


def queue_raw(client: Client, key: str, task: Optional[str], args: Optional[list] = None,
              kwargs: Optional[dict] = None, job_id: Optional[str] = None, **fields: str) -> str:
    """HSET job:<id> qw:task ... qw:args ...; LPUSH <key> <id>: the documented plain producer."""
    job_id = job_id or uuid.uuid4().hex
    mapping: dict[str, str] = dict(fields)
    if task is not None:
        mapping["qw:task"] = task
    if args is not None:
        mapping["qw:args"] = json.dumps(args)
    if kwargs is not None:
        mapping["qw:kwargs"] = json.dumps(kwargs)
    pipe = client.redis.pipeline(transaction=True)
    pipe.hset(f"job:{job_id}", mapping=mapping or {"x": "1"})
    pipe.lpush(key, job_id)
    pipe.execute()
    return job_id


def runs(directory: Path, job_id: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob(f"{job_id}.done.*"))]


def failure(client: Client, job_id: str) -> Any:
    return next((f for f in client.get_failed_jobs() if f.id == job_id), None)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def test_a_task_module_runs_its_tasks_with_their_arguments(start_manager, client: Client, out: Path) -> None:
    start_manager(CODE, num_workers=1)
    first = queue_raw(client, "all:jobs", "tasks_app.add", [str(out), 4, 5])
    second = queue_raw(client, "all:jobs", "app.mail.send", [str(out), "a@b.c"], {"subject": "hi", "tag": [1]})
    report = queue_raw(client, "all:jobs", "tasks_app.Report", [str(out)], {"month": "2026-11"})
    wait_for(lambda: all(runs(out, j) for j in (first, second, report)), what="three task jobs")
    assert runs(out, first)[0]["sum"] == 9
    assert runs(out, second)[0] | {"pid": 0} == {"task": "app.mail.send", "to": "a@b.c", "subject": "hi",
                                                  "extra": {"tag": [1]}, "pid": 0, "attempt": 1}
    assert runs(out, report)[0]["month"] == "2026-11"
    # Done: a task job's record stays, with its result, for the manager's --result-ttl.
    wait_for(lambda: client.redis.hget(f"job:{first}", "qw:state") == b"done", what="the acknowledgement")
    assert client.redis.hget(f"job:{first}", "qw:result") == b"9"
    assert 0 < client.redis.ttl(f"job:{first}") <= 600


def test_redis_cli_is_enough_to_queue_a_task(start_manager, client: Client, redis_server: RedisServer,
                                             out: Path) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("no redis-cli on PATH")
    start_manager(CODE, num_workers=1)
    port = str(redis_server.port)
    subprocess.run([cli, "-p", port, "HSET", "job:cli1", "qw:task", "tasks_app.add", "qw:args",
                    f'["{out}", 2, 3]'], check=True, capture_output=True)
    subprocess.run([cli, "-p", port, "LPUSH", "all:jobs", "cli1"], check=True, capture_output=True)
    wait_for(lambda: runs(out, "cli1"), what="the job queued with redis-cli")
    assert runs(out, "cli1")[0]["sum"] == 5


def test_a_function_target_and_tasks_run_side_by_side(start_manager, client: Client, records, out: Path) -> None:
    start_manager("targets:record", tasks=[CODE], num_workers=1)
    plain = client.queue_job({"dir": str(records.dir)})
    task = queue_raw(client, "all:jobs", "tasks_app.add", [str(out), 1, 1])
    wait_for(lambda: records.done(plain) == 1 and runs(out, task), what="both jobs")


@pytest.mark.parametrize(("task", "args", "reason"), [
    ("nope", [], "unknown task 'nope'; this manager runs: app.mail.send, tasks_app.Report, tasks_app.add, "
                 "tasks_app.give_up, tasks_app.later"),
    ("os:remove", ["/tmp/x"], "import path 'os:remove' is not allowed (qw-manager --allow)"),
    ("tasks_app:helper", [], "import path 'tasks_app:helper' is not allowed (qw-manager --allow)"),
])
def test_what_the_manager_did_not_load_fails_at_once_with_the_reason(
        start_manager, client: Client, task: str, args: list, reason: str) -> None:
    start_manager(CODE, num_workers=1, max_attempts=5)
    job_id = queue_raw(client, "all:jobs", task, args)
    wait_for(lambda: failure(client, job_id), what="the refused job in the failed list")
    failed = failure(client, job_id)
    assert failed.error == reason
    assert failed.attempts == 1  # no retries: they could not help


def test_a_plain_job_fails_where_the_manager_runs_only_tasks(start_manager, client: Client) -> None:
    start_manager(CODE, num_workers=1)
    job_id = client.queue_job({"n": 1})
    wait_for(lambda: failure(client, job_id), what="the plain job in the failed list")
    assert failure(client, job_id).error.startswith("no target for a plain job; this manager runs only tasks: ")


def test_allowed_import_paths_run_and_others_stay_refused(start_manager, client: Client, out: Path) -> None:
    start_manager(CODE, num_workers=1, allow=["tasks_*"])
    allowed = queue_raw(client, "all:jobs", "tasks_app:helper", [str(out), 7])
    refused = queue_raw(client, "all:jobs", "targets:record", [])
    wait_for(lambda: runs(out, allowed) and failure(client, refused), what="one run, one refusal")
    assert runs(out, allowed)[0]["x"] == 7
    assert failure(client, refused).error == "import path 'targets:record' is not allowed (qw-manager --allow)"


def test_abort_fails_for_good_and_retry_comes_back_after_its_delay(start_manager, client: Client,
                                                                   out: Path) -> None:
    start_manager(CODE, num_workers=1, heartbeat=0.1, lease=1)
    aborted = queue_raw(client, "all:jobs", "tasks_app.give_up", [str(out), "the card was declined"],
                        **{"qw:max_attempts": "5"})
    wait_for(lambda: failure(client, aborted), what="the aborted job failed")
    assert failure(client, aborted).error == "Abort: the card was declined"
    assert failure(client, aborted).attempts == 1 and len(runs(out, aborted)) == 1
    started = time.time()
    later = queue_raw(client, "all:jobs", "tasks_app.later", [str(out), 1.0])
    wait_for(lambda: len(runs(out, later)) == 2, what="the retried job's second run", timeout=10)
    second = runs(out, later)
    assert sorted(r["attempt"] for r in second) == [1, 2]
    assert time.time() - started >= 1.0  # not before the delay it asked for
    assert failure(client, later) is None


def test_a_task_called_with_arguments_it_does_not_take_fails_with_the_type_error(
        start_manager, client: Client, out: Path) -> None:
    start_manager(CODE, num_workers=1, max_attempts=1)
    job_id = queue_raw(client, "all:jobs", "tasks_app.add", [str(out), 1], {"c": 2})
    wait_for(lambda: failure(client, job_id), what="the failed job")
    assert failure(client, job_id).error.startswith("TypeError: ")
    assert "add()" in failure(client, job_id).error


def test_bad_arguments_in_the_hash_fail_without_retries(start_manager, client: Client) -> None:
    start_manager(CODE, num_workers=1, max_attempts=5)
    job_id = queue_raw(client, "all:jobs", "tasks_app.add", None, None, **{"qw:args": "{not json"})
    wait_for(lambda: failure(client, job_id), what="the failed job")
    assert failure(client, job_id).error.startswith("task 'tasks_app.add': ")
    assert failure(client, job_id).attempts == 1


def test_named_queues_are_served_in_the_order_given(start_manager, client: Client, out: Path) -> None:
    manager = start_manager(CODE, num_workers=1, queues=["emails", "reports"])
    manager.pause()
    wait_for(lambda: client.get_manager_info("m1").get("paused") == 1, what="the pause")
    later = queue_raw(client, "all:queue:reports", "tasks_app.add", [str(out), 0, 1])
    first = queue_raw(client, "all:queue:emails", "tasks_app.add", [str(out), 0, 2])
    ignored = queue_raw(client, "all:jobs", "tasks_app.add", [str(out), 0, 3])  # all is not served
    manager.resume()
    wait_for(lambda: runs(out, later) and runs(out, first), what="both named-queue jobs")
    done_at = {j: (out / next(p.name for p in out.glob(f"{j}.done.*"))).stat().st_mtime_ns for j in (first, later)}
    assert done_at[first] < done_at[later]
    time.sleep(0.3)
    assert not runs(out, ignored) and client.get_all_queued_jobs() == [ignored]


def test_a_named_queue_job_goes_back_to_its_own_queue_after_a_death_a_retry_or_a_failure(
        client: Client) -> None:
    keys, queue = client.keys, "all:queue:slow"

    def claimed() -> Job:
        claimer = Claimer(client.redis, client.scripts, keys, "m1", "m1:1", queues=[("slow", None)])
        job = claimer.claim()
        assert job is not None and job.meta["qw:origin"] == queue
        return job

    job_id = queue_raw(client, queue, "tasks_app.add", [1, 2])
    claimed()
    # Its worker died: back on the named queue, not on the manager's own.
    assert requeue(client, "m1", "m1:1", keep_own=True, cause="died", max_attempts=3) == 1
    assert client.redis.lrange(queue, 0, -1) == [job_id.encode()] and not client.redis.llen("m1:jobs")
    # A retry comes due: back on the named queue.
    job = claimed()
    claimer = Claimer(client.redis, client.scripts, keys, "m1", "m1:1")
    assert claimer.fail(job, "boom", retry_at=time.time() - 1, max_attempts=3) == RETRYING
    assert promote_due(client.redis, client.scripts, keys) == 1
    assert client.redis.lrange(queue, 0, -1) == [job_id.encode()]
    # Failed for good, then retried by hand: back on the named queue.
    job = claimed()
    assert claimer.fail(job, "boom", retry_at=None) == FAILED
    assert client.retry_failed([job_id]) == {job_id: "queued"}
    assert client.redis.lrange(queue, 0, -1) == [job_id.encode()] and not client.redis.llen("all:jobs")


@pytest.mark.parametrize(("argv", "error"), [
    (["tasks_none"], "module 'tasks_none' registers no task"),
    (["--queue=bad:name:3", CODE], "--queue=bad:name:3"),
    (["--queue=emails:0", CODE], "the weight must be a whole number"),
    (["--queue=emails:3", "--queue=sms", CODE], "give every queue a weight, or none"),
    (["--allow=os:remove", CODE], "not import paths"),
])
def test_qw_manager_refuses_bad_task_options_in_one_line(redis_server: RedisServer, argv: list[str],
                                                          error: str) -> None:
    done = subprocess.run(["qw-manager", "--port", str(redis_server.port), *argv], capture_output=True,
                          text=True, env=cli_env(), timeout=30)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qw-manager: error: ") and error in lines[0], done.stderr


def test_delay_map_and_send_with_run_on_the_queues_their_tasks_name(start_manager, client: Client,
                                                                     out: Path) -> None:
    import tasks_app

    set_default_client(client)
    try:
        start_manager(CODE, num_workers=2, queues=["emails", "reports", "all"])
        handles = [tasks_app.add.delay(str(out), 1, 2), tasks_app.add.fire(str(out), 3, 4),
                   tasks_app.send_mail.delay(str(out), "a@b.c", subject="x"),  # on the emails queue
                   tasks_app.Report.delay(str(out), "2026-11"),                # on the reports queue
                   *tasks_app.add.map([(str(out), 5, 6), (str(out), 7, 8)]),
                   tasks_app.add.send_with(args=(str(out), 9, 9), queue="emails", max_attempts=1)]
        wait_for(lambda: all(runs(out, h.id) for h in handles), what="every task job")
        sums = [runs(out, h.id)[0].get("sum") for h in handles]
        assert sums == [3, 7, None, None, 11, 15, 18]
        assert runs(out, handles[2].id)[0]["to"] == "a@b.c"
        assert runs(out, handles[3].id)[0]["month"] == "2026-11"
    finally:
        set_default_client(None)


def test_the_tasks_demo_runs_every_kind_of_task_job(tmp_path_factory) -> None:
    import os
    import signal
    import sys

    directory = Path(tmp_path_factory.mktemp("demo"))  # short: the embedded server's socket lives here
    proc = subprocess.Popen([sys.executable, "-m", "qw.tasks_demo", str(directory)], env=cli_env(),
                            stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        wanted = ["hello, Ada", "hello, Grace", "hello, Linus", "mail to ken@example.com", "report for 2026-11",
                  "not an address: 'barbara'"]
        while time.monotonic() < deadline and not all(any(w in line for line in seen) for w in wanted):
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
        assert all(any(w in line for line in seen) for w in wanted), "".join(seen)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        pidfile = directory / "redis.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("queues", [None, [("emails", None), ("all", None)], [("emails", 3), ("sms", 1)]],
                         ids=["shared queue", "named queues", "weighted queues"])
def test_running_task_jobs_costs_one_round_trip_per_job(client: Client, queues) -> None:
    import tasks_app

    from qw import Worker

    from tests_support import commands_run

    set_default_client(client)
    try:
        queue = queues[0][0] if queues else None
        tasks_app.add.map([("/nonexistent", n, n) for n in range(101)], queue=queue)
    finally:
        set_default_client(None)
    worker = Worker(client, None, "box", name="box:1", tasks={"tasks_app.add": tasks_app.add}, queues=queues)
    claimer, dispatcher = worker._setup()
    claimer.ack_id("warm-up")  # loads the claim script (an ack of nothing changes nothing)
    with commands_run(client.redis) as seen:
        ack, resolved = None, 0
        while True:
            job = claimer.claim(ack)
            if job is None:
                break
            assert dispatcher.resolve(job.meta).args[1:] == [resolved, resolved]
            resolved += 1
            ack = job
    top_level = {k: v for k, v in seen().items() if k in ("evalsha", "eval", "blmove", "script", "multi")}
    assert resolved == 101 and top_level == {"evalsha": 102}  # and one last claim that found nothing


def write_task_app(directory: Path, version: int, extra: str = "") -> None:
    """A task module of the user's own, whose VERSION each run records."""
    import textwrap

    (directory / "task_app_under_test.py").write_text(textwrap.dedent(f"""
        import json, os, uuid
        from pathlib import Path
        import qw

        VERSION = {version}

        @qw.task
        def record(directory):
            job = qw.current_job()
            # Written aside, then renamed: the test never reads a half-written file.
            name = f"{{job.id}}.done.{{uuid.uuid4().hex}}"
            (Path(directory) / ("." + name)).write_text(json.dumps({{"version": VERSION}}))
            os.replace(Path(directory) / ("." + name), Path(directory) / name)
    """) + extra)
    for cached in (directory / "__pycache__").glob("task_app_under_test*"):
        cached.unlink()


def test_a_reload_imports_task_modules_afresh_and_keeps_the_old_ones_if_the_new_fail(
        start_manager, client: Client, out: Path, tmp_path: Path, monkeypatch) -> None:
    code = tmp_path / "code"
    code.mkdir()
    write_task_app(code, 1)
    monkeypatch.syspath_prepend(str(code))
    manager = start_manager("task_app_under_test", name="box", num_workers=1)
    first = queue_raw(client, "all:jobs", "task_app_under_test.record", [str(out)])
    wait_for(lambda: runs(out, first), what="the job on version 1")
    write_task_app(code, 2, "\n@qw.task\ndef more():\n    pass\n")
    old = set(manager.worker_pids.values())
    answer = client.control("box", "reload")
    assert answer["ok"] is True, answer
    # An old worker's wait in flight may still claim a job: queue once it is gone.
    wait_for(lambda: not old & set(manager.worker_pids.values()), what="the old worker to leave")
    second = queue_raw(client, "all:jobs", "task_app_under_test.record", [str(out)])
    third = queue_raw(client, "all:jobs", "task_app_under_test.more", [])
    wait_for(lambda: runs(out, second) and client.redis.hget(f"job:{third}", "qw:state") == b"done",
             what="jobs on version 2")
    assert [runs(out, j)[0]["version"] for j in (first, second)] == [1, 2]
    (code / "task_app_under_test.py").write_text("import qw\n@qw.task\ndef broken(:\n")
    answer = client.control("box", "reload")
    assert answer["ok"] is False and "SyntaxError" in answer["message"]
    fourth = queue_raw(client, "all:jobs", "task_app_under_test.record", [str(out)])
    wait_for(lambda: runs(out, fourth), what="the job, on the code that last imported")
    assert runs(out, fourth)[0]["version"] == 2


def test_a_stopped_manager_leaves_no_idle_entry_in_the_named_queues(start_manager, client: Client) -> None:
    manager = start_manager(CODE, num_workers=2, queues=["emails", "sms", "all"])
    wait_for(lambda: client.redis.hlen("all:queue:emails:idle") == 2 and client.redis.hlen("all:queue:sms:idle") == 2,
             what="both idle workers listed in both named queues")
    manager.scale(1)
    wait_for(lambda: client.redis.hlen("all:queue:sms:idle") == 1, what="the retired worker unlisted")
    manager.stop(20)
    assert not client.redis.exists("all:queue:emails:idle", "all:queue:sms:idle")
