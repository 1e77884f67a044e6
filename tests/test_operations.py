"""Running qw in production: resize, reload and re-exec under load, remote commands,
statistics, the metrics endpoint, info and top, configuration files, logs and titles.

Real processes, real signals, a real Redis; each job's runs are counted from
the files the targets write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from qw import Client
from qw.control import ControlError

from conftest import Records, cli_env, run_cli, wait_for


def manager_cmd(redis_server, *args: str) -> list[str]:
    return ["qw-manager", "--host", "127.0.0.1", "--port", str(redis_server.port), "--name", "box", *args]


def qwc(redis_server, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return run_cli("qw-client", "--host", "127.0.0.1", "--port", str(redis_server.port), *args, timeout=timeout)


def write_app(directory: Path, version: int) -> None:
    """A target module of the user's own, whose VERSION each run records."""
    (directory / "app_under_test.py").write_text(textwrap.dedent(f"""
        import json, os, time, uuid
        from pathlib import Path

        VERSION = {version}

        def run(job_id, data):
            if data.get("sleep"):
                time.sleep(float(data["sleep"]))
            body = json.dumps({{"version": VERSION, "pid": os.getpid()}})
            (Path(data["dir"]) / f"{{job_id}}.done.{{uuid.uuid4().hex}}").write_text(body)
    """))
    # The source changes within the same second: make sure the new one is compiled.
    for cached in (directory / "__pycache__").glob("app_under_test*"):
        cached.unlink()


def versions(records: Records, ids: list[str]) -> dict[str, list[int]]:
    return {job_id: [d["version"] for d in records.done_data(job_id)] for job_id in ids}


def exactly_once(records: Records, ids: list[str]) -> None:
    runs = {job_id: records.done(job_id) for job_id in ids}
    assert [job_id for job_id, n in runs.items() if n != 1] == [], "jobs run other than once"


def live_workers(client: Client) -> int:
    return len(client.get_manager_workers("box"))


def test_ttin_ttou_and_hup_under_load_lose_no_job_and_run_none_twice(
        spawn, client: Client, records: Records, redis_server, tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    proc = spawn(manager_cmd(redis_server, "--workers", "2", "app_under_test:run"),
                 env=cli_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{cli_env()['PYTHONPATH']}"),
                 stderr=subprocess.PIPE, text=True)
    wait_for(lambda: live_workers(client) == 2, what="2 workers")
    ids = client.queue_jobs({"dir": str(records.dir), "sleep": 0.02, "n": n} for n in range(300))

    # One at a time: the kernel merges a signal sent while the same one is pending.
    for count in (3, 4):
        proc.send_signal(signal.SIGTTIN)
        wait_for(lambda n=count: live_workers(client) == n, what=f"{count} workers after TTIN")
    for count in (3, 2, 1):
        proc.send_signal(signal.SIGTTOU)
        wait_for(lambda n=count: live_workers(client) == n, what=f"{count} workers after TTOU")
    # Never below one.
    proc.send_signal(signal.SIGTTOU)
    time.sleep(0.3)
    assert live_workers(client) == 1

    write_app(tmp_path, 2)
    before = set(client.get_manager_workers("box"))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: set(client.get_manager_workers("box")) - before, what="a new worker after HUP")
    later = client.queue_jobs({"dir": str(records.dir), "n": n} for n in range(20))
    wait_for(lambda: records.total_done() == 320, timeout=60, what="every job")
    exactly_once(records, ids + later)
    # Reloaded: jobs queued after HUP ran the new code; the pool size set at run time stays.
    assert set(v for job_id in later for v in versions(records, [job_id])[job_id]) == {2}
    assert live_workers(client) == 1
    assert client.get_all_queued_jobs() == [] and client.get_failed_jobs() == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    log = proc.stderr.read()
    assert "Traceback" not in log
    assert "workers 2 -> 3 (expand" in log and "workers 2 -> 1 (contract" in log and "reloaded" in log


def test_a_reload_to_code_that_cannot_be_imported_keeps_the_old_workers(
        start_manager, client: Client, records: Records, tmp_path: Path, monkeypatch) -> None:
    write_app(tmp_path, 1)
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = start_manager("app_under_test:run", name="box", num_workers=1)
    before = manager.worker_pids
    (tmp_path / "app_under_test.py").write_text("def broken(:\n")
    answer = client.control("box", "reload")
    assert answer["ok"] is False and "SyntaxError" in answer["message"]
    assert manager.worker_pids == before
    job_id = client.queue_job({"dir": str(records.dir)})
    wait_for(lambda: records.done(job_id) == 1, what="the job, on the old code")
    assert versions(records, [job_id]) == {job_id: [1]}


def test_usr2_executes_the_manager_again_on_new_code_under_the_same_name(
        spawn, client: Client, records: Records, redis_server, tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    proc = spawn(manager_cmd(redis_server, "--workers", "2", "--lease", "2", "app_under_test:run"),
                 env=cli_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{cli_env()['PYTHONPATH']}"),
                 stderr=subprocess.PIPE, text=True)
    wait_for(lambda: live_workers(client) == 2, what="2 workers")
    old_workers = set(client.get_manager_workers("box"))
    ids = client.queue_jobs({"dir": str(records.dir), "sleep": 0.05, "n": n} for n in range(60))
    wait_for(lambda: records.total_done() >= 4, what="some jobs done")

    # Watch the name all along: it must never be free, or other managers would reap it.
    holders: list = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            holders.append(client.get_manager_holder("box"))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    write_app(tmp_path, 2)
    started = client.get_manager_info("box")["started"]
    proc.send_signal(signal.SIGUSR2)
    try:
        wait_for(lambda: records.total_done() == 60, timeout=60, what="every job")
        wait_for(lambda: client.get_manager_info("box").get("started") not in (None, started),
                 what="the new manager")
    finally:
        watching.set()
        watcher.join()
    exactly_once(records, ids)
    assert None not in holders and len(holders) > 10
    assert proc.poll() is None  # the same process, executed again: supervisors see no exit
    assert client.get_manager_info("box")["pid"] == proc.pid
    assert {v for job_id in ids for v in versions(records, [job_id])[job_id]} == {1, 2}
    assert set(client.get_manager_workers("box")) == old_workers  # same names, new processes
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "Traceback" not in proc.stderr.read()
    assert client.get_all_managers() == []


def test_remote_commands_reach_each_manager_even_with_every_worker_busy(
        start_manager, client: Client, records: Records, redis_server) -> None:
    one = start_manager(name="one", num_workers=1)
    two = start_manager(name="two", num_workers=2)
    busy = [client.queue_job({"dir": str(records.dir), "sleep": 3}, manager="one")]
    busy += [client.queue_job({"dir": str(records.dir), "sleep": 3}, manager="two") for _ in range(2)]
    wait_for(lambda: all(records.started(j) == 1 for j in busy), what="every worker busy")

    began = time.monotonic()
    answer = client.control("one", "scale", n=3)
    assert answer == {"ok": True, "message": "workers 1 -> 3", "manager": "one", "before": 1, "after": 3}
    assert time.monotonic() - began < 2  # not after the running jobs
    wait_for(lambda: len(one.workers) == 3, what="3 workers on one")
    assert len(two.workers) == 2  # the other manager is untouched

    result = qwc(redis_server, "contract", "two")
    assert (result.returncode, result.stdout) == (0, "manager two: workers 2 -> 1\n")
    assert qwc(redis_server, "pause", "one").stdout == "manager one: now paused\n"
    held = client.queue_job({"dir": str(records.dir)}, manager="one")
    time.sleep(1.0)
    assert records.started(held) == 0  # paused: nothing claimed
    assert client.get_manager_info("one")["paused"] == 1
    assert qwc(redis_server, "resume", "one").stdout == "manager one: now claiming\n"
    wait_for(lambda: records.done(held) == 1, what="the held job after resume")
    assert qwc(redis_server, "expand", "one").stdout == "manager one: workers 3 -> 4\n"

    result = qwc(redis_server, "stop", "two")
    assert result.returncode == 0 and "stopping" in result.stdout
    assert two.join(15)
    wait_for(lambda: all(records.done(j) == 1 for j in busy), what="the busy jobs, finished")
    exactly_once(records, busy + [held])
    assert client.get_all_managers() == ["one"]

    # Commands to a manager that is not running fail at once, with one line and exit 1.
    result = qwc(redis_server, "scale", "two", "2")
    assert result.returncode == 1 and result.stderr == "qw-client: error: manager 'two' is not running (no live lease)\n"
    result = qwc(redis_server, "scale", "one", "0")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "at least 1" in result.stderr


def test_an_unanswered_command_is_withdrawn(client: Client, redis_server) -> None:
    # A name whose lease is live but whose holder never reads its commands
    # (frozen, or an older qw): the command must not linger and fire later.
    client.redis.set("ghost:heartbeat", "someone", px=10_000)
    with pytest.raises(ControlError, match="did not take the command within 0.5 s; withdrawn"):
        client.control("ghost", "stop", timeout=0.5)
    assert client.redis.llen("ghost:control") == 0
    result = qwc(redis_server, "--wait", "0.3", "pause", "ghost")
    assert result.returncode == 1 and "withdrawn" in result.stderr and result.stderr.count("\n") == 1


def test_stats_count_a_known_workload(start_manager, client: Client, records: Records, redis_server) -> None:
    start_manager("targets:mixed", name="box", num_workers=2, max_attempts=2, backoff=0.1)
    d = str(records.dir)
    ok = client.queue_jobs([{"dir": d, "do": "ok", "sleep": 0.05}] * 10)
    failing = client.queue_jobs([{"dir": d, "do": "fail"}] * 2)
    dying = client.queue_job({"dir": d, "do": "die_once", "how": "exit"})
    wait_for(lambda: len(client.get_failed_jobs()) == 2 and records.done(dying) == 1, what="the workload")
    expected = {"queued": 13, "processed": 11, "failed": 2, "retried": 2, "requeued": 1}

    def counted() -> dict:
        window = client.get_stats("box")["windows"]["5 min"]
        return {name: window[name] for name in expected} | {"all": client.get_stats()["windows"]["5 min"]}

    wait_for(lambda: {k: v for k, v in counted().items() if k != "all"} == {**expected, "queued": 0},
             what="the manager's counts in Redis")
    # `queued` is counted by producers, in the totals over all managers.
    overall = counted()["all"]
    assert {name: overall[name] for name in expected} == expected
    stats = client.get_stats("box")["windows"]["5 min"]
    assert stats["failure_rate"] == pytest.approx(4 / 15, abs=1e-3)
    # 15 settled runs (the killed one was not settled): ten of them slept 50 ms.
    assert 0.05 <= stats["run"]["p50"] <= 0.1 and stats["run"]["p99"] <= 0.25
    assert stats["wait"]["p50"] is not None
    report = json.loads(qwc(redis_server, "stats", "box", "--json").stdout)
    assert report["windows"]["5 min"]["processed"] == 11
    [line] = [line for line in qwc(redis_server, "stats").stdout.splitlines() if line.startswith("last 5 min")]
    assert line.split()[3:8] == ["13", "11", "2", "2", "1"]
    for job_id in ok:
        assert records.done(job_id) == 1
    assert all(records.started(j) == 2 for j in failing)
    # Every statistics hash expires (history: 6 h of minutes, 7 days of days).
    for key in client.redis.keys("*:stats:*"):
        assert 0 < client.redis.ttl(key) <= 7 * 86400


def test_metrics_endpoint_serves_prometheus_figures(start_manager, client: Client, records: Records) -> None:
    manager = start_manager(name="box", num_workers=2, metrics_port=0)
    client.queue_jobs([{"dir": str(records.dir)}] * 5)
    client.queue_jobs([{"dir": str(records.dir), "sleep": 5}])
    wait_for(lambda: records.total_done() == 5, what="5 jobs")
    wait_for(lambda: any(s.value == 1 for s in scrape(manager)["qw_workers"] if s.labels["state"] == "busy"),
             what="a busy worker")
    metrics = scrape(manager)
    assert value(metrics, "qw_jobs_processed_total") == 5
    assert value(metrics, "qw_jobs_failed_total") == 0
    assert value(metrics, "qw_job_run_seconds_count") == 5
    assert value(metrics, "qw_redis_up") == 1
    assert {s.labels["state"]: s.value for s in metrics["qw_workers"]} == {"busy": 1, "idle": 1}
    ages = {s.labels["worker"]: s.value for s in metrics["qw_worker_last_claim_age_seconds"]}
    assert set(ages) == {"box:1", "box:2"}
    assert {s.labels["queue"]: s.value for s in metrics["qw_queue_depth"]} == {"all:jobs": 0, "box:jobs": 0}
    assert manager.metrics_url.startswith("http://127.0.0.1:")


def scrape(manager) -> dict[str, list]:
    with urllib.request.urlopen(manager.metrics_url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(metrics: dict[str, list], name: str) -> float:
    [sample] = metrics[name]
    return sample.value


def test_info_top_and_process_titles(spawn, client: Client, records: Records, redis_server) -> None:
    proc = spawn(manager_cmd(redis_server, "--workers", "2", "targets:record"), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: live_workers(client) == 2, what="2 workers")
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    wait_for(lambda: any(w["job"] == job_id for w in json.loads(qwc(redis_server, "info", "--json").stdout)["workers"]),
             what="info to show the running job")
    report = json.loads(qwc(redis_server, "info", "--json").stdout)
    [manager] = report["managers"]
    assert (manager["name"], manager["pid"], manager["workers"], manager["alive"]) == ("box", proc.pid, 2, True)
    assert sorted(w["state"] for w in report["workers"]) == ["busy", "idle"]
    assert report["queues"]["in_progress"] == 1
    text = qwc(redis_server, "info").stdout
    assert text.startswith("MANAGER") and job_id in text

    # ps shows who is who, and what the busy worker runs.
    assert title(proc.pid) == "qw-manager box: 2 workers"
    wait_for(lambda: any(title(pid).startswith("qw-worker box:") and f"job {job_id} for" in title(pid)
                         for pid in worker_pids(proc.pid)), what="the busy worker's title")
    assert any(title(pid).endswith(": idle") for pid in worker_pids(proc.pid))

    top = subprocess.Popen(["qw-client", "--port", str(redis_server.port), "top", "--interval", "0.2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    time.sleep(1.5)
    top.send_signal(signal.SIGINT)
    out, err = top.communicate(timeout=10)
    assert top.returncode == 0 and err == ""
    assert out.count("MANAGER") >= 3 and job_id in out


def title(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def worker_pids(pid: int) -> list[int]:
    from conftest import children_of

    return children_of(pid)


def test_configuration_file_under_command_line_flags_and_reread_on_hup(
        spawn, client: Client, records: Records, redis_server, tmp_path: Path) -> None:
    config = tmp_path / "qw.toml"
    config.write_text('target = "targets:record"\nworkers = 1\nname = "fromfile"\nlog-format = "json"\n')
    proc = spawn(manager_cmd(redis_server, "--config", str(config)), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: live_workers(client) == 1, what="1 worker, named as the flag says, not the file")
    assert client.get_all_managers() == ["box"]
    # HUP reads the file again; what changed in it applies.
    config.write_text('target = "targets:record"\nworkers = 2\nname = "fromfile"\nlog-format = "json"\n'
                      'max-attempts = 5\n')
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: live_workers(client) == 2, what="2 workers after the file changed")
    job_id = client.queue_job({"dir": str(records.dir)})
    wait_for(lambda: records.done(job_id) == 1, what="a job")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    lines = proc.stderr.read().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "name", "message"} <= set(entries[0])
    assert any("changed: num_workers, max_attempts" in e["message"] for e in entries)


@pytest.mark.parametrize("content, error", [
    ("workers = 2\nbogus = 1\n", "unknown option 'bogus'"),
    ("workers = [1]\n", "workers must be a string or a number"),
    ("workers = \n", "is not valid TOML"),
    ('workers = 0\ntarget = "targets:record"\n', "--workers must be at least 1"),
    ("workers = 2\n", "no target"),
])
def test_bad_configuration_files_get_one_line(redis_server, tmp_path: Path, content: str, error: str) -> None:
    config = tmp_path / "qw.toml"
    config.write_text(content)
    result = run_cli("qw-manager", "--port", str(redis_server.port), "--config", str(config))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and error in result.stderr, result.stderr
    missing = run_cli("qw-manager", "--config", str(tmp_path / "nope.toml"), "targets:record")
    assert missing.returncode == 1 and "cannot read configuration file" in missing.stderr


def test_a_long_graceful_stop_keeps_the_name(start_manager, client: Client, records: Records) -> None:
    # Jobs finishing during a stop may take longer than the lease: the name is
    # renewed meanwhile, or another manager would requeue them and they would
    # run twice.
    leaving = start_manager(name="leaving", num_workers=1, lease=1.0)
    start_manager(name="other", num_workers=1, lease=1.0)
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 3}, manager="leaving")
    wait_for(lambda: records.started(job_id) == 1, what="the long job to start")
    leaving.request_stop()
    assert leaving.join(15)
    assert (records.started(job_id), records.done(job_id)) == (1, 1)
    assert client.get_all_queued_jobs() == [] and client.get_all_managers() == ["other"]
