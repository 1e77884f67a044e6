"""Redis Cluster: qw through redis-py's RedisCluster, every key of a namespace in its hash tag's slot.

``cluster_set`` (conftest.py) runs three primaries of the test's own; runs
are counted outside Redis (tests/targets.py).
"""

from __future__ import annotations

import pytest
import redis

from qw import Client, Manager
from qw.connection import ClusterURL
from qw.exceptions import ConfigError, ReplicationShortfall

from conftest import ClusterSet, Records, run_cli, wait_for

NAMESPACE = "{app}:"


def test_cluster_urls_name_nodes() -> None:
    assert ClusterURL.parse("redis+cluster://:pw@n1:7000,n2/") == ClusterURL(
        (("n1", 7000), ("n2", 6379)), None, "pw")
    for bad in ("redis+cluster://n1/3", "redis+cluster://n1:x", "redis+cluster://n1?x=1"):
        with pytest.raises(ConfigError, match="^bad Cluster URL: "):
            ClusterURL.parse(bad)


def test_a_namespace_without_a_hash_tag_is_refused_on_a_cluster() -> None:
    for namespace in ("", "app:", "{}:"):
        with pytest.raises(ConfigError, match="hash tag"):
            Client(url="redis+cluster://127.0.0.1:1", namespace=namespace)
    done = run_cli("qw-client", "--url=redis+cluster://127.0.0.1:1", "info")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0 and "hash tag" in done.stderr


def test_every_script_path_runs_on_a_cluster(cluster_set: ClusterSet, records: Records) -> None:
    client = Client(url=cluster_set.url, namespace=NAMESPACE)
    slot = client.redis.keyslot(client.keys.all_jobs)
    home = client.redis.get_node_from_key(client.keys.all_jobs)
    manager = Manager("targets:mixed", url=cluster_set.url, namespace=NAMESPACE, name="cl", num_workers=2,
                      max_attempts=2, backoff=0.05, graceful_timeout=5)
    manager.start()
    directory = str(records.dir)
    try:
        one = client.queue_job({"do": "ok", "dir": directory})  # enqueue, then ack_and_claim
        many = client.queue_jobs({"do": "ok", "dir": directory} for _ in range(30))  # enqueue_many
        kept = client.queue_job({"do": "ok", "dir": directory}, track=True, result_ttl=60, tags=["t"],
                                priority=3)  # a record, a tag, a priority
        later = client.queue_job({"do": "ok", "dir": directory}, delay=0.3)  # schedule, promote_due
        failing = client.queue_job({"do": "fail", "dir": directory})  # settle_failure: retried, then failed
        after = client.queue_job({"do": "ok", "dir": directory}, depends_on=[kept])  # depend, release
        cancelled = client.queue_job({"do": "ok", "dir": directory}, delay=60)
        assert client.cancel(cancelled)  # cancel
        parked = client.queue_job({"do": "ok", "dir": directory}, queue="nobody")  # a queue no worker serves
        assert client.set_priority(parked, 2)  # set_priority
        assert client.recur("tick", data={"do": "ok", "dir": directory}, every=3600) == "created"  # recur
        fired = client.run_recurring_now("tick")  # fire_recurring
        everything = [one, *many, kept, later, after, fired]
        wait_for(lambda: all(records.done(i) == 1 for i in everything), timeout=20, what="every job")
        assert client.job(kept).result(10) is None  # watch, and the settled list
        assert client.job(kept).state == "done"
        wait_for(lambda: [f.id for f in client.get_failed_jobs()] == [failing], timeout=10,
                 what="the failing job to use its two attempts")
        assert records.started(failing) == 2
        assert client.retry_failed([failing]) == {failing: "queued"}  # retry_failed
        wait_for(lambda: records.started(failing) == 3, timeout=10, what="the failed job's retry")
        assert client.get_all_managers() == ["cl"]
        assert records.done(cancelled) == 0 and records.done(parked) == 0
    finally:
        manager.stop(20)
    # Every key qw wrote lives in the namespace's slot, on one node.
    with redis.Redis(host=home.host, port=home.port) as node:
        names = node.keys("*")
        assert names and all(name.startswith(NAMESPACE.encode()) for name in names)
        assert {node.cluster("KEYSLOT", name) for name in names} == {slot}
    for server in cluster_set.servers:
        if server.port != home.port:
            with redis.Redis(port=server.port) as other:
                assert other.dbsize() == 0
    client.close()


def test_durable_mode_waits_on_the_namespace_primary(cluster_set: ClusterSet) -> None:
    # These primaries have no replicas: every WAIT comes back short, on the connection that wrote.
    client = Client(url=cluster_set.url, namespace=NAMESPACE, wait_replicas=1, wait_timeout_ms=50)
    try:
        with pytest.raises(ReplicationShortfall, match="job j1 written to the primary but confirmed by 0"):
            client.queue_job({"n": 1}, job_id="j1")
        with pytest.raises(ReplicationShortfall, match="a batch of jobs"):
            client.queue_jobs([{"n": 2}, {"n": 3}])
        with pytest.raises(ReplicationShortfall, match="a scheduled job"):
            client.queue_job({"n": 4}, delay=60)
        assert len(client.get_all_queued_jobs()) == 3 and len(client.get_scheduled_jobs()) == 1
    finally:
        client.close()
