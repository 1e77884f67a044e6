"""Redis Sentinel: qw finds the primary through redis-py's Sentinel and follows a failover.

The fault tests run a primary, a replica and three Sentinels of their own
(``sentinel_set`` in conftest.py) and count runs outside Redis (tests/targets.py).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Callable, Optional

import pytest
import redis
from redis._parsers.base import BaseParser

from qw import Client, Manager
from qw.connection import RedisConfig, SentinelURL, is_transient
from qw.exceptions import ConfigError, QwError, ReplicationShortfall
from qw.queuing import new_id
from qw.scripts import DirectCaller, Scripts

from conftest import Records, SentinelSet, run_cli, wait_for


@pytest.mark.parametrize("url, parsed", [
    ("redis+sentinel://s1:26379,s2:26380,s3/mymaster",
     SentinelURL((("s1", 26379), ("s2", 26380), ("s3", 26379)), "mymaster")),
    ("redis+sentinel://:pw@s1:1/mymaster/3", SentinelURL((("s1", 1),), "mymaster", 3, None, "pw")),
    ("redis+sentinel://qw:s%40cret@s1/mymaster/0/", SentinelURL((("s1", 26379),), "mymaster", 0, "qw", "s@cret")),
])
def test_sentinel_urls_name_sentinels_a_service_and_a_db(url: str, parsed: SentinelURL) -> None:
    assert SentinelURL.parse(url) == parsed
    assert "pw" not in RedisConfig(url=url).address() and "cret" not in RedisConfig(url=url).address()


@pytest.mark.parametrize("url", [
    "redis+sentinel://", "redis+sentinel://s1/", "redis+sentinel://s1:port/m", "redis+sentinel://s1,/m",
    "redis+sentinel://s1/m/db", "redis+sentinel://s1/m/0/1", "redis+sentinel://s1/m?x=1",
])
def test_a_bad_sentinel_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="^bad Sentinel URL: "):
        Client(url=url)


@pytest.mark.parametrize("reply", [
    "READONLY You can't write against a read only replica.",
    "NOREPLICAS Not enough good replicas to write.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "LOADING Redis is loading the dataset in memory",
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
    # Redis 6 wraps an error a command raised inside a script:
    "Error running script (call to f_67fc9fe5f46375135940e9a1b2bd55257ca2302e): @user_script:504: "
    "@user_script: 504: -NOREPLICAS Not enough good replicas to write.",
])
def test_the_replies_of_a_failover_are_waited_out(reply: str) -> None:
    assert is_transient(BaseParser.parse_error(reply))


def test_the_clis_refuse_a_bad_sentinel_url_in_one_line() -> None:
    done = run_cli("qw-client", "--url=redis+sentinel://127.0.0.1:1/", "info")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "bad Sentinel URL" in done.stderr
    done = run_cli("qw-client", "info", QW_REDIS_URL="redis+sentinel://127.0.0.1:1/qwtest")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr


def test_the_clis_take_a_sentinel_url(sentinel_set: SentinelSet, records: Records, spawn) -> None:
    manager = spawn(["qw-manager", f"--url={sentinel_set.url}", "--name=cli", "--workers=1", "targets:record"])
    data = json.dumps({"dir": str(records.dir)})
    queued = run_cli("qw-client", "queue", "string", data, QW_REDIS_URL=sentinel_set.url)
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    wait_for(lambda: records.done(job_id) == 1, timeout=20, what="the job queued through $QW_REDIS_URL")
    info = run_cli("qw-client", f"--url={sentinel_set.url}", "info")
    assert info.returncode == 0 and "cli" in info.stdout, info.stderr
    manager.terminate()
    assert manager.wait(20) == 0


def test_every_connection_goes_to_the_primary_sentinel_names(sentinel_set: SentinelSet) -> None:
    client = Client(url=sentinel_set.url)
    try:
        assert client.ping()
        client.queue_job({"n": 1})  # the producer's own connection (DirectCaller)
        direct = DirectCaller(client.redis)  # a worker's raw connection
        assert int(direct.command("LLEN", client.keys.all_jobs)) == 1
        assert direct._conn.port == sentinel_set.primary.port  # redis-py's own would try localhost:6379
        with redis.Redis(port=sentinel_set.primary.port) as primary:
            assert primary.llen("all:jobs") == 1
        direct.close()
    finally:
        client.close()


def test_a_raw_connection_asks_sentinel_again_after_a_failover(sentinel_set: SentinelSet) -> None:
    client = Client(url=sentinel_set.url)
    direct = DirectCaller(client.redis)
    scripts = Scripts(client.redis)
    try:
        assert direct.command("SET", "before", "1")
        old = sentinel_set.primary.port
        sentinel_set.sentinel().execute_command("SENTINEL", "FAILOVER", "qwtest")
        wait_for(lambda: sentinel_set.primary_port() != old, timeout=15, what="the failover")
        new = sentinel_set.primary_port()
        # Written within RECHECK of the switch, or refused by the demoted primary
        # (min-replicas-to-write): either way the next try lands on the new one.
        deadline = time.monotonic() + 5
        while True:
            try:
                direct.command("SET", "after", "1")
                client.redis.set("after-pool", "1")
                direct(scripts.release_lock, ["lock"], ["nobody"])  # a script, loaded on the new primary
                break
            except redis.RedisError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with redis.Redis(port=new) as primary:
            assert primary.get("after") == b"1" and primary.get("after-pool") == b"1"
    finally:
        direct.close()
        client.close()


def test_jobs_keep_flowing_through_a_manual_failover(sentinel_set: SentinelSet, records: Records) -> None:
    old = sentinel_set.primary.port

    def failover() -> None:
        sentinel_set.sentinel().execute_command("SENTINEL", "FAILOVER", "qwtest")

    # Replication is asynchronous: an acknowledgement the demoted primary took
    # in its last half second is not on the new one, and that job runs again
    # (README: what a failover can lose). In durable mode each step is on the
    # replica before the next: then nothing is lost and nothing runs twice.
    _jobs_flow_through(sentinel_set, records, failover, wait_replicas=1)
    # The demoted primary took no job of its own (min-replicas-to-write).
    assert sentinel_set.primary_port() != old


def test_jobs_keep_flowing_when_the_primary_is_killed(sentinel_set: SentinelSet, records: Records) -> None:
    _jobs_flow_through(sentinel_set, records, sentinel_set.primary.kill)


def test_jobs_keep_flowing_while_no_sentinel_answers(sentinel_set: SentinelSet, records: Records) -> None:
    client = Client(url=sentinel_set.url)
    manager = Manager("targets:record", url=sentinel_set.url, name="ha", num_workers=2, graceful_timeout=5)
    manager.start()
    try:
        first = client.queue_jobs({"dir": str(records.dir)} for _ in range(20))
        wait_for(lambda: all(records.done(i) == 1 for i in first), what="jobs before the Sentinels go")
        sentinel_set.stop_sentinels()
        time.sleep(1.5)  # past RECHECK: every connection in use asked, and kept its primary
        during = [client.queue_job({"dir": str(records.dir)}) for _ in range(20)]
        wait_for(lambda: all(records.done(i) == 1 for i in during), what="jobs while no Sentinel answers")
        sentinel_set.start_sentinels()
        after = client.queue_jobs({"dir": str(records.dir)} for _ in range(20))
        wait_for(lambda: all(records.done(i) == 1 for i in after), what="jobs once the Sentinels are back")
        assert records.total_done() == 60
    finally:
        manager.stop(20)
        client.close()


def _jobs_flow_through(sentinel_set: SentinelSet, records: Records, fault: Callable[[], None],
                       after: Optional[Callable[[int], list[str]]] = None, wait_replicas: int = 0) -> None:
    """Queue and run jobs while ``fault`` moves the primary: each job queued runs, once.

    ``after`` is called with the new primary's port once jobs flow through
    it, and returns the ids of any jobs it queued; more jobs are queued
    after it returns.
    """
    client = Client(url=sentinel_set.url, wait_replicas=wait_replicas)
    manager = Manager("targets:record", url=sentinel_set.url, name="ha", num_workers=2, graceful_timeout=5,
                      wait_replicas=wait_replicas)
    manager.start()
    queued: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        # A producer that got an error tries again with the same id: queuing is idempotent.
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
        old = sentinel_set.primary.port
        fault()
        started = time.monotonic()
        wait_for(lambda: sentinel_set.primary_port() != old, timeout=20, what="the failover")
        switched = time.monotonic() - started
        moved_at = len(queued)
        wait_for(lambda: len(queued) >= moved_at + 200, timeout=20, what="jobs queued after the failover")
        if after is not None:
            queued.extend(after(sentinel_set.primary_port()))
            healed_at = len(queued)
            wait_for(lambda: len(queued) >= healed_at + 100, timeout=20, what="jobs queued after the fault ended")
        stop.set()
        producer.join(10)
        wait_for(lambda: all(records.done(i) >= 1 for i in queued), timeout=30,
                 what="every queued job to run")
        wait_for(lambda: client.get_worker_pending_jobs("ha:1") == [] == client.get_worker_pending_jobs("ha:2"),
                 timeout=10, what="the last acknowledgements")
        with redis.Redis(port=sentinel_set.primary_port()) as primary:
            assert primary.llen("all:jobs") == 0
            # The jobs queued since went through the new primary (claims and acks too).
            assert primary.info("commandstats")["cmdstat_evalsha"]["calls"] >= 2 * 200
        twice = [i for i in queued if records.done(i) > 1]
        print(f"{len(queued)} jobs, failover seen in {switched:.1f} s, {len(errors)} producer errors, "
              f"{len(twice)} ran twice")
        assert twice == [], f"{len(twice)} of {len(queued)} jobs ran twice"
        assert records.total_done() == len(queued)
        assert client.get_failed_jobs() == []
    finally:
        stop.set()
        producer.join(10)
        manager.stop(20)
        client.close()


def test_jobs_keep_flowing_when_the_primary_freezes(sentinel_set: SentinelSet, records: Records) -> None:
    """SIGSTOP of the primary, past down-after-milliseconds: Sentinel promotes the replica; the frozen
    primary, resumed once the jobs flow through the new one, comes back as its replica."""
    frozen = sentinel_set.primary

    def thaw(new_port: int) -> list[str]:
        frozen.resume()
        wait_for(lambda: _follows(frozen.port, new_port), timeout=20, what="the old primary to follow the new")
        return []

    try:
        _jobs_flow_through(sentinel_set, records, frozen.pause, after=thaw)
    finally:
        frozen.resume()


def _follows(port: int, primary_port: int) -> bool:
    """True when the server on ``port`` is a replica of ``primary_port``, in sync."""
    try:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as server:
            info = server.info("replication")
    except redis.RedisError:
        return False
    return (info["role"] == "slave" and int(info["master_port"]) == primary_port
            and info["master_link_status"] == "up")


def test_scripts_are_loaded_again_on_a_primary_without_them(sentinel_set: SentinelSet, records: Records
                                                           ) -> None:
    """NOSCRIPT after a failover: the new primary's script cache is emptied (SCRIPT FLUSH) while
    jobs flow; every path (the worker's own connections, the producer's, pipelines) loads them again."""
    client = Client(url=sentinel_set.url)

    def failover() -> None:
        sentinel_set.sentinel().execute_command("SENTINEL", "FAILOVER", "qwtest")

    def flush(new_port: int) -> list[str]:
        with redis.Redis(port=new_port) as primary:
            primary.script_flush()
            ids = client.queue_jobs({"dir": str(records.dir)} for _ in range(10))  # a pipeline
            ids.append(client.queue_job({"dir": str(records.dir)}, delay=0.1))  # schedule, promote_due
            assert primary.info("errorstats")["errorstat_NOSCRIPT"]["count"] >= 1
        return ids

    try:
        _jobs_flow_through(sentinel_set, records, failover, after=flush)
    finally:
        client.close()


def test_without_replicas_producers_get_an_error_and_workers_wait(sentinel_set: SentinelSet,
                                                                  records: Records) -> None:
    """NOREPLICAS: the replica stopped, the primary (min-replicas-to-write 1) refuses writes. A producer
    gets one clear error; the worker whose job ends meanwhile waits, and acknowledges it once the
    replica is back."""
    client = Client(url=sentinel_set.url)
    manager = Manager("targets:record", url=sentinel_set.url, name="ha", num_workers=1, graceful_timeout=5)
    manager.start()
    replica = sentinel_set.replicas[0]
    directory = str(records.dir)
    try:
        running = client.queue_job({"dir": directory, "sleep": 1.0})
        wait_for(lambda: records.started(running) == 1, timeout=20, what="the job to start")
        replica.stop()
        with redis.Redis(port=sentinel_set.primary.port, decode_responses=True) as primary:
            wait_for(lambda: primary.info("replication")["min_slaves_good_slaves"] == 0,
                     what="the primary to count no good replica")
        with pytest.raises(ReplicationShortfall, match="NOREPLICAS") as refused:
            client.queue_job({"dir": directory}, job_id="later")
        assert not refused.value.written
        done = run_cli("qw-client", f"--url={sentinel_set.url}", "queue", "string", json.dumps({"dir": directory}))
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "NOREPLICAS" in done.stderr, done.stderr
        wait_for(lambda: records.done(running) == 1, what="the job to end")
        time.sleep(1.0)  # its acknowledgement is refused meanwhile: the job stays the worker's
        assert client.get_worker_pending_jobs("ha:1") == [running]
        replica.start()
        wait_for(lambda: _follows(replica.port, sentinel_set.primary.port), timeout=20, what="the replica")
        wait_for(lambda: client.get_worker_pending_jobs("ha:1") == [], timeout=10, what="the acknowledgement")
        client.queue_job({"dir": directory}, job_id="later")
        wait_for(lambda: records.done("later") == 1, timeout=10, what="the job queued again")
        assert records.done(running) == 1 and records.total_done() == 2
        assert manager.workers == ["ha:1"] and client.get_failed_jobs() == []
    finally:
        manager.stop(20)
        client.close()


@pytest.mark.parametrize("lost", [("all:managers", "ha:workers"), ("all:managers", "ha:workers", "ha:heartbeat")],
                         ids=["registration", "registration-and-lease"])
def test_a_manager_registers_again_on_a_primary_that_lacks_its_registration(
        sentinel_set: SentinelSet, spawn, lost: tuple[str, ...]) -> None:
    """A failover right after a manager registered, to a replica that lacks those writes: the manager
    (frozen meanwhile, so that it cannot write them again first) checks and restores them."""
    manager = spawn(["qw-manager", f"--url={sentinel_set.url}", "--name=ha", "--workers=2", "targets:record"])
    with redis.Redis(port=sentinel_set.primary.port) as primary:
        wait_for(lambda: primary.scard("ha:workers") == 2, timeout=20, what="the registration")
    old = sentinel_set.primary.port
    os.kill(manager.pid, signal.SIGSTOP)
    try:
        sentinel_set.sentinel().execute_command("SENTINEL", "FAILOVER", "qwtest")
        wait_for(lambda: sentinel_set.primary_port() != old, timeout=15, what="the failover")
        with redis.Redis(port=sentinel_set.primary_port()) as promoted:
            promoted.srem("all:managers", "ha")
            promoted.delete(*(key for key in lost if key != "all:managers"))
    finally:
        os.kill(manager.pid, signal.SIGCONT)
    started = time.monotonic()

    def listed() -> bool:
        done = run_cli("qw-client", f"--url={sentinel_set.url}", "managers")
        return done.returncode == 0 and "ha  2 worker(s)  alive, held by pid" in done.stdout

    wait_for(listed, timeout=10, what="qw-client managers to list it again, with its lease and workers")
    print(f"registered again {time.monotonic() - started:.1f} s after it resumed")
    manager.terminate()
    assert manager.wait(20) == 0
