"""Redis Cluster: qw through redis-py's RedisCluster, every key of a namespace in its hash tag's slot.

``cluster_set`` (conftest.py) runs three primaries of the test's own; runs
are counted outside Redis (tests/targets.py).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest
import redis
from redis._parsers.base import BaseParser

from qw import Client, Manager
from qw.connection import ClusterURL, is_redirect, is_transient
from qw.exceptions import ConfigError, JobNotFound, QwError, ReplicationShortfall
from qw.partitions import PartitionedClient, partition_namespaces, partition_of
from qw.queuing import new_id

from conftest import ClusterSet, Records, run_cli, wait_for

NAMESPACE = "{app}:"


def test_cluster_urls_name_nodes() -> None:
    assert ClusterURL.parse("redis+cluster://:pw@n1:7000,n2/") == ClusterURL(
        (("n1", 7000), ("n2", 6379)), None, "pw")
    for bad in ("redis+cluster://n1/3", "redis+cluster://n1:x", "redis+cluster://n1?x=1"):
        with pytest.raises(ConfigError, match="^bad Cluster URL: "):
            ClusterURL.parse(bad)


@pytest.mark.parametrize("reply", [
    "MOVED 6805 127.0.0.1:7001", "ASK 6805 127.0.0.1:7001", "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN The cluster is down",
    "Error running script (call to f_1): @user_script:40: @user_script: 40: Lua script attempted to access a "
    "non local key in a cluster node",
])
def test_the_replies_of_a_moving_slot_are_waited_out(reply: str) -> None:
    error = BaseParser.parse_error(reply)
    assert is_redirect(error) and is_transient(error)
    assert not is_redirect(BaseParser.parse_error("ERR unknown command"))


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


def test_jobs_keep_flowing_while_the_namespace_slot_migrates(cluster_set: ClusterSet, records: Records) -> None:
    """CLUSTER SETSLOT MIGRATING / IMPORTING and MIGRATE of the namespace's slot, a few keys at a time,
    under load: the workers' and the producer's own connections meet ASK, TRYAGAIN, "non local key"
    and MOVED, wait them out and follow the slot; each job queued runs, once."""
    client = Client(url=cluster_set.url, namespace=NAMESPACE)
    slot = client.redis.keyslot(client.keys.all_jobs)
    source = client.redis.get_node_from_key(client.keys.all_jobs)
    target = next(s for s in cluster_set.servers if s.port != source.port)

    def migrate() -> list[str]:
        # Jobs due in a second or two: more keys to move, some of them moved while queued.
        later = client.queue_jobs(({"dir": str(records.dir)} for _ in range(40)), delay=1.5)
        with redis.Redis(port=source.port, decode_responses=True) as old, \
                redis.Redis(port=target.port, decode_responses=True) as new:
            old_id, new_id = old.execute_command("CLUSTER", "MYID"), new.execute_command("CLUSTER", "MYID")
            new.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", old_id)
            old.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", new_id)
            while True:
                keys = old.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 2)
                if not keys:
                    break
                old.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
                time.sleep(0.03)  # slowly: the workers must meet the split slot
            for server in (target, *(s for s in cluster_set.servers if s is not target)):
                with redis.Redis(port=server.port) as node:
                    node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", new_id)
            redirected = old.info("errorstats")
        assert "errorstat_ASK" in redirected or "errorstat_TRYAGAIN" in redirected, redirected
        return later

    _jobs_flow_through(cluster_set, client, records, migrate)
    with redis.Redis(port=source.port) as old, redis.Redis(port=target.port) as new:
        assert old.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        assert new.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) > 0
    client.close()


def test_jobs_keep_flowing_when_the_namespace_primary_is_killed(replicated_cluster: ClusterSet,
                                                               records: Records) -> None:
    """SIGKILL of the primary serving the namespace's slot: its replica takes over (cluster-node-timeout
    2 s) and the workers go on there."""
    client = Client(url=replicated_cluster.url, namespace=NAMESPACE)
    primary = client.redis.get_node_from_key(client.keys.all_jobs)
    with redis.Redis(port=primary.port, decode_responses=True) as node:
        replica = int(node.info("replication")["slave0"]["port"])

    def kill() -> list[str]:
        replicated_cluster.server_on(primary.port).kill()
        wait_for(lambda: _serves(replica, client.keys.all_jobs), timeout=30, what="the replica to take over")
        return []

    _jobs_flow_through(replicated_cluster, client, records, kill)
    client.close()


def _serves(port: int, key: str) -> bool:
    """True when the node on ``port`` is the primary of ``key``'s slot, as it sees the cluster."""
    try:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as node:
            slot = int(node.cluster("KEYSLOT", key))
            myself = node.execute_command("CLUSTER", "MYID")
            return any(start <= slot <= end and owner[2] == myself
                       for start, end, owner, *_replicas in node.execute_command("CLUSTER", "SLOTS"))
    except redis.RedisError:
        return False


def _jobs_flow_through(cluster: ClusterSet, client: Client, records: Records,
                       fault: Callable[[], list[str]]) -> None:
    """Queue and run jobs while ``fault`` moves the namespace's slot: each job queued runs, once
    (those ``fault`` queued itself, whose ids it returns, too)."""
    manager = Manager("targets:record", url=cluster.url, namespace=NAMESPACE, name="cl", num_workers=2,
                      graceful_timeout=5)
    manager.start()
    queued: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        # An error is tried again with the same id: queuing is idempotent.
        while not stop.is_set():
            job_id = new_id()
            while not stop.is_set():
                try:
                    client.queue_job({"dir": str(records.dir)}, job_id=job_id)
                except (QwError, redis.RedisError) as exc:
                    errors.append(exc)
                    time.sleep(0.05)
                    continue
                queued.append(job_id)
                break
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: records.total_done() >= 100, timeout=20, what="jobs to run before the fault")
        started = time.monotonic()
        queued.extend(fault())
        took = time.monotonic() - started
        moved_at = len(queued)
        wait_for(lambda: len(queued) >= moved_at + 200, timeout=30, what="jobs queued after the fault")
        stop.set()
        producer.join(10)
        wait_for(lambda: all(records.done(i) >= 1 for i in queued), timeout=30, what="every queued job to run")
        wait_for(lambda: client.get_worker_pending_jobs("cl:1") == [] == client.get_worker_pending_jobs("cl:2"),
                 timeout=10, what="the last acknowledgements")
        twice = [i for i in queued if records.done(i) > 1]
        print(f"{len(queued)} jobs, the fault took {took:.1f} s, {len(errors)} producer errors "
              f"({sorted({type(e).__name__ for e in errors})}), {len(twice)} ran twice")
        assert twice == [], f"{len(twice)} of {len(queued)} jobs ran twice"
        assert records.total_done() == len(queued)
        assert client.get_failed_jobs() == [] and client.get_all_queued_jobs() == []
        assert manager.workers == ["cl:1", "cl:2"]
    finally:
        stop.set()
        producer.join(10)
        manager.stop(20)


def test_one_queue_spreads_over_partitions(cluster_set: ClusterSet, records: Records) -> None:
    """Partitions (a first slice): K namespaces {app:0}: ... in their own slots, K stored and checked,
    jobs spread round-robin or by key, ids that name their partition, readers that fan out."""
    client = PartitionedClient(url=cluster_set.url, namespace=NAMESPACE, partitions=3)
    namespaces = partition_namespaces(NAMESPACE, 3)
    assert namespaces == ["{app:0}:", "{app:1}:", "{app:2}:"]
    managers = [Manager("targets:mixed", url=cluster_set.url, namespace=namespace, name=f"p{i}", num_workers=1,
                        max_attempts=1, graceful_timeout=5) for i, namespace in enumerate(namespaces)]
    for manager in managers:
        manager.start()
    directory = str(records.dir)
    try:
        spread = [client.queue_job({"do": "ok", "dir": directory}) for _ in range(30)]
        assert [sum(partition_of(i, 3) == p for i in spread) for p in range(3)] == [10, 10, 10]
        keyed = [client.queue_job({"do": "ok", "dir": directory}, partition_key="user-7") for _ in range(5)]
        assert len({partition_of(i, 3) for i in keyed}) == 1
        batch = client.queue_jobs([{"do": "ok", "dir": directory}] * 9)  # dealt in turn, a pipeline each
        assert [partition_of(i, 3) for i in batch] == [0, 1, 2] * 3
        kept = client.queue_job({"do": "ok", "dir": directory}, result_ttl=60)
        failing = client.queue_job({"do": "fail", "dir": directory})
        wait_for(lambda: all(records.done(i) == 1 for i in [*spread, *keyed, *batch, kept]), timeout=20,
                 what="every job")
        assert client.job(kept).result(10) is None and client.job(kept).state == "done"  # found in one hop
        wait_for(lambda: [f.id for f in client.get_failed_jobs()] == [failing], what="the failed job, fanned in")
        assert client.get_all_queued_jobs() == []
        with pytest.raises(ConfigError, match="has 3 partitions"):
            PartitionedClient(url=cluster_set.url, namespace=NAMESPACE, partitions=4)
        with pytest.raises(JobNotFound, match="names no partition"):
            client.job("3.abc")
    finally:
        for manager in managers:
            manager.stop(20)
    slots = {client.base.redis.keyslot(namespace + "all:jobs") for namespace in namespaces}
    assert len(slots) == 3  # each partition's keys in a slot of its own
    client.close()


def test_durable_mode_on_a_cluster_with_replicas(replicated_cluster: ClusterSet, records: Records) -> None:
    client = Client(url=replicated_cluster.url, namespace=NAMESPACE, wait_replicas=1)
    manager = Manager("targets:record", url=replicated_cluster.url, namespace=NAMESPACE, name="cl", num_workers=1,
                      graceful_timeout=5, wait_replicas=1)
    manager.start()
    try:
        ids = [client.queue_job({"dir": str(records.dir)}), *client.queue_jobs({"dir": str(records.dir)}
                                                                               for _ in range(10))]
        wait_for(lambda: all(records.done(i) == 1 for i in ids), timeout=20, what="the durable jobs")
    finally:
        manager.stop(20)
        client.close()
