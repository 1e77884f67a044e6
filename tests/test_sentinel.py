"""Redis Sentinel: qw finds the primary through redis-py's Sentinel and follows a failover.

The fault tests run a primary, a replica and three Sentinels of their own
(``sentinel_set`` in conftest.py) and count runs outside Redis (tests/targets.py).
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from qw import Client, Manager
from qw.connection import RedisConfig, SentinelURL
from qw.exceptions import ConfigError, QwError
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


def test_the_clis_refuse_a_bad_sentinel_url_in_one_line() -> None:
    done = run_cli("qw-client", "--url=redis+sentinel://127.0.0.1:1/", "info")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "bad Sentinel URL" in done.stderr
    done = run_cli("qw-client", "info", QW_REDIS_URL="redis+sentinel://127.0.0.1:1/qwtest")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr


def test_every_connection_goes_to_the_primary_sentinel_names(sentinel_set: SentinelSet) -> None:
    client = Client(url=sentinel_set.url)
    try:
        assert client.ping()
        client.queue_job({"n": 1})  # the producer's own connection (DirectCaller)
        direct = DirectCaller(client.redis)  # a worker's raw connection
        assert int(direct.command("LLEN", client.keys.all_jobs)) == 1
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
    client = Client(url=sentinel_set.url)
    manager = Manager("targets:record", url=sentinel_set.url, name="ha", num_workers=2, graceful_timeout=5)
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
        wait_for(lambda: records.total_done() >= 100, timeout=20, what="jobs to run before the failover")
        old = sentinel_set.primary.port
        sentinel_set.sentinel().execute_command("SENTINEL", "FAILOVER", "qwtest")
        wait_for(lambda: sentinel_set.primary_port() != old, timeout=15, what="the failover")
        moved_at = len(queued)
        wait_for(lambda: len(queued) >= moved_at + 200, timeout=20, what="jobs queued after the failover")
        stop.set()
        producer.join(10)
        wait_for(lambda: all(records.done(i) >= 1 for i in queued), timeout=30,
                 what="every queued job to run")
        wait_for(lambda: client.get_worker_pending_jobs("ha:1") == [] == client.get_worker_pending_jobs("ha:2"),
                 timeout=10, what="the last acknowledgements")
        with redis.Redis(port=sentinel_set.primary_port()) as primary:
            assert primary.llen("all:jobs") == 0
        twice = [i for i in queued if records.done(i) > 1]
        assert twice == [], f"{len(twice)} of {len(queued)} jobs ran twice"
        assert records.total_done() == len(queued)
        assert client.get_failed_jobs() == []
    finally:
        stop.set()
        producer.join(10)
        manager.stop(20)
        client.close()
