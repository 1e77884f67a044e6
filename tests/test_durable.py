"""Durable mode (``wait_replicas``): queued jobs and acknowledgements confirmed by replicas with WAIT.

Runs on the Sentinel set of conftest.py (a primary, a replica, three
Sentinels); a replica stopped with SIGSTOP makes the shortfall.
"""

from __future__ import annotations

import json
import time

import pytest
import redis

from qw import Client, Manager
from qw.exceptions import ConfigError, ReplicationShortfall

from conftest import Records, SentinelSet, run_cli, wait_for


@pytest.mark.parametrize("replicas, timeout", [(-1, 1000), ("x", 1000), (1, 0), (1, 60000), (True, 1000)])
def test_bad_durable_settings_are_config_errors(replicas: object, timeout: object) -> None:
    with pytest.raises(ConfigError, match="^wait_"):
        Client(port=1, wait_replicas=replicas, wait_timeout_ms=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["--wait-replicas=x", "--wait-replicas=-1", "--wait-timeout=0"])
def test_the_clis_refuse_bad_durable_options_in_one_line(option: str) -> None:
    for command in (("qw-client", "--port=1", option, "info"), ("qw-manager", "--port=1", option, "targets:record")):
        done = run_cli(*command)
        assert done.returncode == 1, done
        assert done.stderr.strip().count("\n") == 0 and "wait" in done.stderr, done.stderr


def test_durable_jobs_are_confirmed_and_run(sentinel_set: SentinelSet, records: Records) -> None:
    client = Client(url=sentinel_set.url, wait_replicas=1)
    manager = Manager("targets:record", url=sentinel_set.url, name="dur", num_workers=2, graceful_timeout=5,
                      wait_replicas=1)
    manager.start()
    directory = str(records.dir)
    try:
        ids = [client.queue_job({"dir": directory}),  # one job, on the producer's own connection
               *client.queue_jobs({"dir": directory} for _ in range(20)),  # a batch, pipelined
               client.queue_job({"dir": directory}, delay=0.2)]  # scheduled
        first = ids[0]
        ids.append(client.queue_job({"dir": directory}, depends_on=[client.queue_job(
            {"dir": directory}, track=True)]))  # waiting on a dependency
        wait_for(lambda: records.total_done() == len(ids) + 1, timeout=20, what="every durable job")
        assert all(records.done(i) == 1 for i in ids)
        with redis.Redis(port=sentinel_set.replicas[0].port) as replica:  # the replica has the acks too
            wait_for(lambda: replica.llen("dur:1:jobs") == 0 == replica.llen("dur:2:jobs")
                     and not replica.exists(f"job:{first}"), what="the acknowledgements on the replica")
        done = run_cli("qw-client", f"--url={sentinel_set.url}", "--wait-replicas=1", "queue", "string",
                       json.dumps({"dir": directory}))
        assert done.returncode == 0, done.stderr
        wait_for(lambda: records.done(done.stdout.strip()) == 1, what="the job the CLI queued")
    finally:
        manager.stop(20)
        client.close()


def test_a_shortfall_is_an_error_to_the_producer(sentinel_set: SentinelSet) -> None:
    client = Client(url=sentinel_set.url, wait_replicas=1, wait_timeout_ms=200)
    replica = sentinel_set.replicas[0]
    replica.pause()  # the primary still counts it (min-replicas-max-lag 10) but it confirms nothing
    try:
        started = time.monotonic()
        with pytest.raises(ReplicationShortfall, match="confirmed by 0 of 1 replica") as raised:
            client.queue_job({"n": 1}, job_id="j1")
        assert raised.value.confirmed == 0 and raised.value.wanted == 1
        assert time.monotonic() - started < 2
        assert client.get_all_queued_jobs() == ["j1"]  # on the primary: a failover now could lose it
        with pytest.raises(ReplicationShortfall, match="a batch of jobs"):
            client.queue_jobs([{"n": 2}, {"n": 3}])
        with pytest.raises(ReplicationShortfall, match="a scheduled job"):
            client.queue_job({"n": 4}, delay=60)
        done = run_cli("qw-client", f"--url={sentinel_set.url}", "--wait-replicas=1", "--wait-timeout=100",
                       "queue", "string", '{"n": 5}')
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "confirmed by 0 of 1 replica(s) within 100 ms" in done.stderr
    finally:
        replica.resume()
    # Queued again with the same id: nothing new is written, and the wait is for that same write.
    client.queue_job({"n": 1}, job_id="j1")
    with redis.Redis(port=replica.port) as on_replica:
        assert on_replica.lrange("all:jobs", 0, -1).count(b"j1") == 1
    client.close()


def test_a_worker_runs_a_job_only_once_its_claim_is_confirmed(sentinel_set: SentinelSet, records: Records
                                                            ) -> None:
    client = Client(url=sentinel_set.url)  # a producer without durable mode
    manager = Manager("targets:record", url=sentinel_set.url, name="dur", num_workers=1, graceful_timeout=5,
                      wait_replicas=1, wait_timeout_ms=200)
    manager.start()
    replica = sentinel_set.replicas[0]
    try:
        before = client.queue_job({"dir": str(records.dir)})
        wait_for(lambda: records.done(before) == 1, timeout=20, what="a job before the replica stops")
        replica.pause()
        job_id = client.queue_job({"dir": str(records.dir)})
        wait_for(lambda: client.get_worker_pending_jobs("dur:1") == [job_id], what="the claim")
        time.sleep(1.0)  # five WAITs come back short: the worker holds the job, and lives
        assert records.started(job_id) == 0
        assert manager.workers == ["dur:1"]
        replica.resume()
        wait_for(lambda: records.done(job_id) == 1, timeout=20, what="the job once the replica is back")
        wait_for(lambda: client.get_worker_pending_jobs("dur:1") == [], what="its acknowledgement")
        assert records.total_done() == 2 and client.get_failed_jobs() == []
    finally:
        replica.resume()
        manager.stop(20)
        client.close()
