"""qw-client and qw-manager as a user runs them: real subprocesses, real signals."""

import json
import os
import signal
import subprocess
import time

import pytest

from qw import Client, __version__

from conftest import Records, cli_env, free_port, run_cli, wait_for
from tests_support import lasting_keys


@pytest.fixture
def qwc(redis_server):
    def run(*args: str, input=None):
        return run_cli("qw-client", "--host", "127.0.0.1", "--port", str(redis_server.port), *args, input=input)

    return run


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(("qw-client: error: ", "qw-manager: error: ")), result.stderr
    assert text in result.stderr


def test_version() -> None:
    for prog in ("qw-client", "qw-manager"):
        result = run_cli(prog, "--version")
        assert result.returncode == 0 and result.stdout.strip() == f"{prog} {__version__}"


def test_queue_string_prints_the_id(client: Client, qwc) -> None:
    result = qwc("queue", "string", '{"n": 1, "l": [true, null, 2.5], "s": "é"}')
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert client.get_all_queued_jobs() == [job_id]
    assert client.get_job(job_id) == {"n": 1, "l": [True, None, 2.5], "s": "é"}


def test_queue_to_a_manager_and_a_worker(client: Client, qwc) -> None:
    to_manager = qwc("queue", "string", '{"a": 1}', "box").stdout.strip()
    assert client.get_manager_queued_jobs("box") == [to_manager]
    client.register_worker("box", "box:1")
    to_worker = qwc("--worker=box:1", "queue", "string", '{"a": 2}').stdout.strip()
    assert client.get_worker_pending_jobs("box:1") == [to_worker]
    one_line_error(qwc("--worker=box:2", "queue", "string", '{"a": 3}'), "worker 'box:2' is not registered")


def test_queue_file_object_jsonl_and_stdin(client: Client, qwc, tmp_path) -> None:
    single = tmp_path / "one.json"
    single.write_text('{\n  "a": {"b": [1, 2]}\n}\n')
    [one] = qwc("queue", "file", str(single)).stdout.split()
    assert client.get_job(one) == {"a": {"b": [1, 2]}}
    lines = "\n".join(json.dumps({"n": n}) for n in range(2500)) + "\n\n"
    result = qwc("queue", "file", "-", input=lines)
    ids = result.stdout.split()
    assert result.returncode == 0 and len(ids) == 2500
    assert client.get_all_queued_jobs()[1:] == ids
    assert client.get_job(ids[-1]) == {"n": 2499}


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["queue", "string", "{nope"], None, "invalid JSON"),
        (["queue", "string", "[1, 2]"], None, "job data must be a JSON object, not an array"),
        (["queue", "string", '"text"'], None, "not a string"),
        (["queue", "string", '{"qw:x": 1}'], None, "reserved prefix"),
        (["queue", "file", "/nonexistent/jobs.json"], None, "cannot read /nonexistent/jobs.json"),
        (["queue", "file", "-"], '{"a": 1}\n{"b": 2}\n{"c": \n{"d": 4}\n', "-, line 3: invalid JSON"),
        (["queue", "file", "-"], '{"a": 1}\n[2]\n', "-, line 2: job data must be a JSON object"),
        (["queue", "file", "-"], "", "no job in it"),
        (["queue", "file", "-"], "\udcff", "not UTF-8"),
        (["queue", "string", "{}", "bad:name"], None, "must not contain ':'"),
        (["--limit", "-1", "jobs"], None, "--limit must be at least 0"),
        (["--limit", "x", "jobs"], None, "--limit must be an integer"),
    ],
)
def test_bad_input_is_one_line_and_queues_nothing(client: Client, qwc, args, stdin, message) -> None:
    if stdin == "\udcff":
        result = subprocess.run(
            ["qw-client", "--port", str(client.config.port), "queue", "file", "-"],
            input=b"\xff\xfe{}", capture_output=True, env=cli_env(),
        )
        result = subprocess.CompletedProcess(result.args, result.returncode, "", result.stderr.decode())
    else:
        result = qwc(*args, input=stdin)
    one_line_error(result, message)
    assert lasting_keys(client) == []


def test_unreachable_redis_is_one_line() -> None:
    port = free_port()
    for args in (["managers"], ["queue", "string", "{}"], ["jobs"]):
        result = run_cli("qw-client", "--port", str(port), *args)
        one_line_error(result, f"cannot reach Redis at localhost:{port}/0")
    result = run_cli("qw-manager", "--port", str(port), "targets:record")
    one_line_error(result, f"cannot reach Redis at localhost:{port}/0")


def test_bad_port_is_one_line() -> None:
    one_line_error(run_cli("qw-client", "--port", "0", "managers"), "--port must be at least 1")
    one_line_error(run_cli("qw-client", "--port", "x", "managers"), "--port must be an integer")


def test_bad_url_is_one_line(client: Client) -> None:
    one_line_error(run_cli("qw-client", "--url", "ftp://x", "managers"), "bad Redis URL")
    result = run_cli("qw-client", "managers", QW_REDIS_URL=f"redis://127.0.0.1:{client.config.port}/0")
    assert result.returncode == 0 and result.stdout.strip() == "no managers registered"


def test_usage_errors_exit_non_zero() -> None:
    result = run_cli("qw-client", "frobnicate")
    assert result.returncode != 0 and "Usage:" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers=0", "targets:record"], "--workers must be at least 1"),
        (["--workers=two", "targets:record"], "--workers must be an integer, got 'two'"),
        (["--name=a:b", "targets:record"], "manager name 'a:b' must not contain ':'"),
        (["--name=all", "targets:record"], "manager name 'all' is reserved"),
        (["nosuch.mod:fn"], "cannot import target 'nosuch.mod:fn': no module named 'nosuch'"),
        (["targets:missing"], "'targets' has no attribute 'missing'"),
        (["--level=loud", "targets:record"], "--level must be one of"),
    ],
)
def test_manager_refuses_bad_options_before_starting(redis_server, client: Client, args, message) -> None:
    result = run_cli("qw-manager", "--port", str(redis_server.port), *args)
    one_line_error(result, message)
    assert client.get_all_managers() == []


def test_inspection_commands(client: Client, records: Records, qwc, start_manager) -> None:
    start_manager(num_workers=2, name="box")
    wait_for(lambda: len(client.get_manager_workers("box")) == 2, what="workers")
    running = client.queue_job({"dir": str(records.dir), "sleep": 30}, worker="box:1")
    wait_for(lambda: records.started(running) == 1, what="a running job")
    queued = client.queue_job({"a": 1}, manager="elsewhere")
    client.redis.lpush("all:jobs", "ghost")
    wait_for(lambda: client.get_failed_jobs(), what="the dangling id to fail")

    managers = qwc("managers")
    assert managers.returncode == 0
    assert managers.stdout.startswith("box  2 worker(s)  alive, held by pid")
    assert json.loads(qwc("--json", "managers").stdout)[0]["alive"] is True

    workers = qwc("workers", "box").stdout.splitlines()
    assert workers == [f"box:1  {running}", "box:2  idle"]
    wait_for(lambda: client.get_manager_health("box").get("box:1", {}).get("busy_for") is not None,
             what="the manager to report box:1 busy")
    rows = json.loads(qwc("workers", "--json").stdout)
    assert [(r["worker"], r["jobs"], r["healthy"]) for r in rows] == [("box:1", [running], True),
                                                                      ("box:2", [], True)]
    assert rows[0]["busy_for"] is not None and rows[1]["busy_for"] is None

    jobs = qwc("jobs").stdout
    assert "queued in all:jobs: 0" in jobs
    assert f"in progress: 1\n  box:1: {running}" in jobs
    assert "failed: 1\n  ghost  " in jobs and "did not exist" in jobs
    report = json.loads(qwc("jobs", "--json").stdout)
    assert report["in_progress"] == {"box:1": [running], "box:2": []}
    assert [f["id"] for f in report["failed"]] == ["ghost"]
    assert queued not in jobs  # only registered managers' queues are listed...
    assert json.loads(qwc("jobs", "elsewhere", "--json").stdout)["manager_queues"] == {"elsewhere": [queued]}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT, signal.SIGINT])
def test_manager_cli_stops_cleanly_on_signals(spawn, client: Client, records: Records, redis_server, signum) -> None:
    proc = spawn(
        ["qw-manager", "--port", str(redis_server.port), "--workers", "2", "--name", "box", "targets:record"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    wait_for(lambda: len(client.get_manager_workers("box")) == 2, what="workers")
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 1})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    # As Ctrl-C in a terminal does: the signal reaches the whole process group.
    os.killpg(proc.pid, signum)
    assert proc.wait(15) == 0, proc.stderr.read()
    assert "Traceback" not in proc.stderr.read()
    if signum == signal.SIGINT:
        # INT means now: the running job is interrupted and queued again, its attempt given back.
        assert records.done(job_id) == 0
        assert client.get_all_queued_jobs() == [job_id]
        assert client.redis.hget(f"job:{job_id}", "qw:attempts") == b"0"
        client.redis.delete("all:jobs", f"job:{job_id}")
    else:
        assert records.done(job_id) == 1
    assert lasting_keys(client) == []


def test_a_second_term_stops_at_once(spawn, client: Client, records: Records, redis_server) -> None:
    proc = spawn(
        ["qw-manager", "--port", str(redis_server.port), "--workers", "1", "--name", "box", "targets:record"],
        stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: len(client.get_manager_workers("box")) == 1, what="workers")
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 60})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # waiting for the job to finish...
    proc.send_signal(signal.SIGTERM)  # ...until told again
    assert proc.wait(10) == 0
    assert client.get_all_queued_jobs() == [job_id]
    assert client.get_all_managers() == []


def test_manager_name_clash_on_the_command_line(client: Client, redis_server, start_manager) -> None:
    start_manager(name="box")
    result = run_cli("qw-manager", "--port", str(redis_server.port), "--name", "box", "targets:record")
    one_line_error(result, "manager 'box' is already running: held by pid")


def test_failed_retry_and_purge(client: Client, records: Records, qwc) -> None:
    ids = [client.queue_job({"dir": str(records.dir), "x": n}, max_attempts=1) for n in range(3)]
    client.redis.lpush("all:jobs", "ghost")
    from qw import Worker

    worker = Worker(client, "targets:fail", "box", name="box:1")
    while worker.run_once():
        pass
    listing = qwc("failed")
    assert listing.returncode == 0
    assert len(listing.stdout.splitlines()) == 4 and "attempts: 1  ValueError: bad value 0" in listing.stdout
    full = {e["id"]: e for e in json.loads(qwc("failed", "--json").stdout)}
    assert full[ids[2]]["data"] == {"dir": str(records.dir), "x": 2}
    assert "Traceback" in full[ids[2]]["traceback"] and full[ids[2]]["errors"][0]["attempt"] == 1

    one = qwc("retry", ids[0])
    assert one.returncode == 0 and one.stdout.strip() == f"{ids[0]}  queued"
    assert client.get_all_queued_jobs() == [ids[0]]
    assert client.redis.hget(f"job:{ids[0]}", "qw:attempts") == b"0"
    missing = qwc("retry", "nope", ids[1])
    assert missing.returncode == 1 and "nope  not failed" in missing.stdout and f"{ids[1]}  queued" in missing.stdout
    rest = qwc("retry", "--all")
    assert rest.returncode == 1  # a dangling id has nothing to run: it stays failed
    assert sorted(rest.stdout.splitlines()) == sorted([f"{ids[2]}  queued", "ghost  no data"])
    assert client.get_all_queued_jobs() == [ids[0], ids[1], ids[2]]
    purge = qwc("purge")
    assert purge.stdout.strip() == "purged 1 failed job(s)"
    assert client.get_failed_jobs() == [] and client.redis.exists("job:ghost") == 0
    assert qwc("failed").stdout.strip() == "no failed jobs"


def test_queue_options(client: Client, qwc) -> None:
    first = qwc("--id=order-1", "--max-attempts=5", "--timeout=2.5", "queue", "string", '{"a": 1}')
    again = qwc("--id=order-1", "queue", "string", '{"a": 2}')
    assert first.stdout.strip() == again.stdout.strip() == "order-1"
    assert client.get_all_queued_jobs() == ["order-1"]
    stored = client.redis.hgetall("job:order-1")
    assert stored[b"qw:max_attempts"] == b"5" and stored[b"qw:timeout"] == b"2.5" and stored[b"a"] == b"1"
    one_line_error(qwc("--max-attempts=0", "queue", "string", "{}"), "--max-attempts must be at least 1")
    one_line_error(qwc("--id=x", "queue", "file", "-", input='{"a": 1}\n{"b": 2}\n'), "--id names one job")


def test_typed_host_and_port_beat_the_environment(client: Client) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli("qw-client", "--port", str(client.config.port), "managers", QW_REDIS_URL=unreachable)
    assert result.returncode == 0, result.stderr
    one_line_error(run_cli("qw-client", "managers", QW_REDIS_URL=unreachable), "cannot reach Redis")


def test_wrong_password_is_one_line(private_redis) -> None:
    admin = Client(port=private_redis.port)
    admin.redis.config_set("requirepass", "s3cret")
    port = private_redis.port
    one_line_error(run_cli("qw-client", "--url", f"redis://:wrong@127.0.0.1:{port}/0", "managers"), "refused us")
    one_line_error(run_cli("qw-client", "--port", str(port), "queue", "string", "{}"), "refused us")
    ok = run_cli("qw-client", "managers", QW_REDIS_URL=f"redis://:s3cret@127.0.0.1:{port}/0")
    assert ok.returncode == 0 and "s3cret" not in ok.stdout + ok.stderr


def test_a_worker_whose_claims_do_not_get_through_is_flagged(client: Client, qwc) -> None:
    # What a manager publishes about a worker that has not reached Redis for
    # a minute while idle (its connection is stuck), next to a healthy one
    # busy with a long job.
    client.register_worker("box", "box:1")
    client.register_worker("box", "box:2")
    client.redis.hset("box:health", mapping={
        "box:1": json.dumps({"pid": 11, "busy_for": None, "since_last_claim": 61.0, "at": time.time()}),
        "box:2": json.dumps({"pid": 12, "busy_for": 300.0, "since_last_claim": 300.2, "at": time.time()}),
    })
    lines = qwc("workers", "box").stdout.splitlines()
    assert lines == ["box:1  idle  UNHEALTHY: no claim got through for 61 s", "box:2  idle"]


def test_jobs_of_one_manager_shows_only_its_failures_and_retries(client: Client, qwc) -> None:
    client.redis.lpush("box:jobs", "ghost")  # a dangling id on box's own queue
    client.redis.lpush("all:jobs", "other-ghost")
    client.fetch_next_job("box", "box:1", timeout=1)
    mine = client.queue_job({"a": 1}, manager="box")
    theirs = client.queue_job({"a": 2})
    client.redis.zadd("all:scheduled", {mine: 9e9, theirs: 9e9})
    client.redis.lrem("box:jobs", 0, mine)
    client.redis.lrem("all:jobs", 0, theirs)
    report = json.loads(qwc("jobs", "box", "--json").stdout)
    assert [f["id"] for f in report["failed"]] == ["ghost"]
    assert [e["id"] for e in report["scheduled"]] == [mine]
    everything = json.loads(qwc("jobs", "--json").stdout)
    assert {f["id"] for f in everything["failed"]} == {"ghost", "other-ghost"}


def test_ping_is_a_liveness_probe(client: Client, qwc, start_manager) -> None:
    assert qwc("ping").returncode == 0
    one_line_error(qwc("ping", "box"), "manager 'box' holds no live lease")
    start_manager(name="box")
    alive = qwc("ping", "box")
    assert alive.returncode == 0 and alive.stdout.startswith("ok: manager box alive, held by pid")
    one_line_error(run_cli("qw-client", "--port", str(free_port()), "ping"), "cannot reach Redis")
