"""Seeing tasks: the table of tasks (``qw-client tasks``, ``info``), statistics per task and per
named queue (``stats --task``, ``stats --queue``), and Prometheus series labelled by task and queue.

Real managers and worker processes on the suite's Redis; task jobs are queued
as a plain producer does (HSET the hash, LPUSH the id, in one MULTI), and
every assertion is on what a user reads: the CLI's output, the client's
reports, a real scrape.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from typing import Any, Optional

from prometheus_client.parser import text_string_to_metric_families

from qw import Client, Worker
from qw.census import QUEUED_CAP

from conftest import Records, RedisServer, run_cli, wait_for

APP = "tasks_seen"
SCOPES = {"seen.ok": {"task": "seen.ok"}, "seen.mail": {"task": "seen.mail"}, "seen.boom": {"task": "seen.boom"},
          "emails": {"queue": "emails"}, "all": {}}


def queue_raw(client: Client, key: str, task: Optional[str], args: Optional[list] = None, n: int = 1) -> list[str]:
    """``n`` jobs of ``task``: HSET job:<id> qw:task ... qw:args ...; LPUSH <key> <id>, pipelined."""
    ids = [uuid.uuid4().hex for _ in range(n)]
    mapping = {"qw:task": task, "qw:args": json.dumps(args or [])} if task else {"x": "1"}
    for start in range(0, n, 2000):
        pipe = client.redis.pipeline(transaction=True)
        for job_id in ids[start:start + 2000]:
            pipe.hset(f"job:{job_id}", mapping=mapping)
            pipe.lpush(key, job_id)
        pipe.execute()
    return ids


def qwc(redis_server: RedisServer, *args: str) -> subprocess.CompletedProcess:
    return run_cli("qw-client", "--host", "127.0.0.1", "--port", str(redis_server.port), *args)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def tasks_json(redis_server: RedisServer, *args: str) -> dict[str, Any]:
    result = qwc(redis_server, "tasks", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_task(table: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {row["task"]: (row["workers"], row["running"], row["queued"]) for row in table["tasks"]}


def test_the_tasks_table_counts_workers_running_and_queued(start_manager, client: Client,
                                                           redis_server: RedisServer) -> None:
    start_manager(APP, name="box", num_workers=2, queues=["emails", "all"])
    start_manager(APP, name="side", num_workers=1)
    start_manager("targets:record", name="plain", num_workers=1, queues=["other"])  # loads no task
    queue_raw(client, "all:jobs", "seen.nap", [60], n=3)
    wait_for(lambda: by_task(client.get_tasks()).get("seen.nap") == (3, 3, 0), what="3 workers on naps")
    # Every worker is busy now: what comes next waits.
    queue_raw(client, "all:jobs", "seen.nap", [60], n=4)
    queue_raw(client, "all:queue:emails", "seen.mail", ["a@b.c"], n=2)
    queue_raw(client, "all:jobs", None)  # a plain job
    queue_raw(client, "all:jobs", "ghost.task")  # a task no manager loaded

    result = qwc(redis_server, "tasks")
    assert result.returncode == 0, result.stderr
    *table, footer = result.stdout.splitlines()
    assert rows("\n".join(table)) == [
        ["TASK", "WORKERS", "RUNNING", "QUEUED"],
        ["ghost.task", "0", "0", "1"],  # nobody can run it: it waits for nobody
        ["seen.boom", "3", "0", "0"],
        ["seen.mail", "3", "0", "2"],
        ["seen.nap", "3", "3", "4"],
        ["seen.ok", "3", "0", "0"],
    ]
    assert footer == "jobs without a task: 0 running, 1 queued"
    # The filter is a substring of the task name, as gearman's server info takes it.
    assert rows(qwc(redis_server, "tasks", "nap").stdout) == [["TASK", "WORKERS", "RUNNING", "QUEUED"],
                                                             ["seen.nap", "3", "3", "4"]]
    assert qwc(redis_server, "tasks", "nothing-like-it").stdout == "no task matches 'nothing-like-it'\n"
    table = tasks_json(redis_server, "seen.")
    assert by_task(table) == {"seen.boom": (3, 0, 0), "seen.mail": (3, 0, 2), "seen.nap": (3, 3, 4),
                              "seen.ok": (3, 0, 0)}
    assert [row["managers"] for row in table["tasks"]] == [["box", "side"]] * 4
    assert table["queued_capped"] is False

    # info shows the same table; for one manager, its workers and the queues it serves only
    # (side does not serve emails).
    info = qwc(redis_server, "info").stdout
    assert "TASK        WORKERS  RUNNING  QUEUED\n" in info and "\nseen.nap    3        3        4\n" in info
    side = json.loads(qwc(redis_server, "info", "side", "--json").stdout)["tasks"]
    assert by_task(side) == {"ghost.task": (0, 0, 1), "seen.boom": (1, 0, 0), "seen.mail": (1, 0, 0),
                             "seen.nap": (1, 1, 4), "seen.ok": (1, 0, 0)}


def test_a_deep_queue_is_counted_up_to_the_cap(start_manager, client: Client, redis_server: RedisServer) -> None:
    start_manager(APP, name="box", num_workers=1)
    client.control("box", "pause")  # nothing is claimed from here on
    queue_raw(client, "all:jobs", "seen.ok", n=QUEUED_CAP + 5)
    result = qwc(redis_server, "tasks")
    assert result.returncode == 0, result.stderr
    *table, footer = result.stdout.splitlines()
    assert rows("\n".join(table)) == [
        ["TASK", "WORKERS", "RUNNING", "QUEUED"],
        ["seen.boom", "1", "0", "0+"],  # at least: the jobs past the cap were not looked at
        ["seen.mail", "1", "0", "0+"],
        ["seen.nap", "1", "0", "0+"],
        ["seen.ok", "1", "0", f"{QUEUED_CAP}+"],
    ]
    assert footer == f"queued: counted among the next {QUEUED_CAP} jobs of each queue; longer: all:jobs (10005)"
    table = tasks_json(redis_server, "ok")
    assert by_task(table) == {"seen.ok": (1, 0, QUEUED_CAP)} and table["queued_capped"] is True
    assert {"queue": "all:jobs", "depth": QUEUED_CAP + 5, "read": QUEUED_CAP} in table["queues"]


def counted(client: Client) -> dict[str, tuple[int, int, int]]:
    """(processed, failed, retried) of each scope over the last 5 minutes."""
    windows = {name: client.get_stats(**scope)["windows"]["5 min"] for name, scope in SCOPES.items()}
    return {name: (w["processed"], w["failed"], w["retried"]) for name, w in windows.items()}


def test_stats_per_task_and_per_queue_count_a_known_workload(start_manager, client: Client, records: Records,
                                                             redis_server: RedisServer) -> None:
    start_manager("targets:record", tasks=[APP], name="box", num_workers=2, queues=["emails", "all"],
                  max_attempts=2, backoff=0.1)
    queue_raw(client, "all:jobs", "seen.ok", n=5)
    queue_raw(client, "all:queue:emails", "seen.mail", ["a@b.c"], n=3)
    queue_raw(client, "all:queue:emails", "seen.boom", n=2)  # 2 attempts each: a retry, then failed
    client.queue_jobs([{"dir": str(records.dir)}] * 2)  # plain jobs: in the totals only
    wait_for(lambda: len(client.get_failed_jobs()) == 2 and records.total_done() == 2, what="the workload")
    expected = {"seen.ok": (5, 0, 0), "seen.mail": (3, 0, 0), "seen.boom": (0, 2, 2),
                "emails": (3, 2, 2), "all": (10, 2, 2)}
    wait_for(lambda: counted(client) == expected, what="the counts in Redis")

    # The same report as `stats`, for one task; queued and requeued are not kept per task: "-".
    text = qwc(redis_server, "stats", "--task=seen.boom").stdout
    assert text.startswith("task seen.boom: history of 6 h by minute, 7 day(s) by day\n")
    [line] = [line for line in text.splitlines() if line.startswith("last 5 min")]
    assert line.split()[3:8] == ["-", "0", "2", "2", "-"]
    report = json.loads(qwc(redis_server, "stats", "--queue=emails", "--json").stdout)
    window = report["windows"]["5 min"]
    assert report["scope"] == "queue emails" and window["queued"] is None and window["requeued"] is None
    assert (window["processed"], window["failed"], window["retried"]) == (3, 2, 2)
    assert window["failure_rate"] == round(4 / 7, 4)  # 2 failed + 2 retried of the 7 runs settled
    # Per task and queue, figures are kept over all managers only, and all:jobs is no named queue.
    for args, error in ((["box", "--task=seen.ok"], "figures per task and per queue are kept over all managers only"),
                        (["--queue=all"], "the shared queue all:jobs has no figures of its own"),
                        (["--task=a:b"], "task name 'a:b' must not contain ':'")):
        result = qwc(redis_server, "stats", *args)
        assert result.returncode == 1 and result.stderr.startswith(f"qw-client: error: {error}")
    # Bounded memory: every new hash expires, as the others do.
    keys = client.redis.keys("all:stats:task:*") + client.redis.keys("all:stats:queue:*")
    assert {k.decode().split(":")[3] for k in keys} == {"seen.ok", "seen.mail", "seen.boom", "emails"}
    assert all(0 < client.redis.ttl(key) <= 7 * 86400 for key in keys)


def scrape(manager: Any) -> dict[str, list]:
    with urllib.request.urlopen(manager.metrics_url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def labelled(metrics: dict[str, list], name: str) -> dict[tuple[str, str], float]:
    return {(s.labels["task"], s.labels["queue"]): s.value for s in metrics[name]}


def test_prometheus_job_series_carry_task_and_queue_labels(start_manager, client: Client,
                                                           records: Records) -> None:
    manager = start_manager("targets:record", tasks=[APP], name="box", num_workers=2, queues=["emails", "all"],
                            metrics_port=0, max_attempts=2, backoff=0.1)
    queue_raw(client, "all:jobs", "seen.ok", n=4)
    queue_raw(client, "all:queue:emails", "seen.mail", ["a@b.c"], n=3)
    queue_raw(client, "all:queue:emails", "seen.boom")
    client.queue_jobs([{"dir": str(records.dir)}] * 2)
    wait_for(lambda: labelled(scrape(manager), "qw_jobs_failed_total").get(("seen.boom", "emails")) == 1
             and sum(labelled(scrape(manager), "qw_jobs_processed_total").values()) == 9, what="the workload")
    metrics = scrape(manager)
    # One series per (task, queue) the manager counted; plain jobs keep the unlabelled one.
    assert labelled(metrics, "qw_jobs_processed_total") == {("", ""): 2, ("seen.ok", ""): 4,
                                                            ("seen.mail", "emails"): 3, ("seen.boom", "emails"): 0}
    assert labelled(metrics, "qw_jobs_retried_total")[("seen.boom", "emails")] == 1
    assert sum(labelled(metrics, "qw_jobs_failed_total").values()) == 1
    runs = labelled(metrics, "qw_job_run_seconds_count")
    assert runs == {("", ""): 2, ("seen.ok", ""): 4, ("seen.mail", "emails"): 3, ("seen.boom", "emails"): 2}
    assert {s.labels["queue"] for s in metrics["qw_queue_depth"]} == {"all:jobs", "box:jobs", "all:queue:emails"}


def test_plain_jobs_count_as_before_and_see_no_tasks(start_manager, client: Client, records: Records,
                                                     redis_server: RedisServer) -> None:
    # A manager without tasks or named queues gives its workers no breakdown: a job costs what it did.
    assert Worker(client, "targets:record").shared.breakdown is None
    manager = start_manager(name="box", num_workers=1, metrics_port=0)
    client.queue_jobs([{"dir": str(records.dir)}] * 3)
    wait_for(lambda: records.total_done() == 3, what="3 jobs")
    wait_for(lambda: client.get_stats()["windows"]["5 min"]["processed"] == 3, what="the counts in Redis")
    [sample] = scrape(manager)["qw_jobs_processed_total"]
    assert (sample.value, sample.labels) == (3, {"manager": "box", "task": "", "queue": ""})
    assert qwc(redis_server, "tasks").stdout == "no tasks\n"
    assert "TASK" not in qwc(redis_server, "info").stdout
    assert client.redis.keys("all:stats:task:*") == client.redis.keys("all:stats:queue:*") == []
