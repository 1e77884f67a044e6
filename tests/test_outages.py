"""Redis going away under a running manager: nothing lost, nothing crashes, work resumes."""

import time

from qw import Client, Manager

from conftest import Records, RedisServer, wait_for


def start(server: RedisServer, **options) -> Manager:
    manager = Manager("targets:record", host="127.0.0.1", port=server.port, name="box",
                      num_workers=options.pop("num_workers", 1), **options)
    manager.start()
    return manager


def test_redis_killed_and_restarted_mid_job(private_redis: RedisServer, records: Records) -> None:
    client = Client(host="127.0.0.1", port=private_redis.port)
    manager = start(private_redis)
    try:
        pids = manager.worker_pids
        job_id = client.queue_job({"dir": str(records.dir), "sleep": 1})
        wait_for(lambda: records.started(job_id) == 1, what="the job to start")
        private_redis.kill()
        wait_for(lambda: records.done(job_id) == 1, what="the job to finish while Redis is down")
        time.sleep(0.5)  # the acknowledgement fails and is retried meanwhile
        private_redis.start()
        # The acknowledgement was kept and delivered: the job is done, not rerun.
        wait_for(lambda: client.redis.exists(f"job:{job_id}") == 0, what="the late acknowledgement")
        assert client.get_worker_pending_jobs("box:1") == []
        after = client.queue_job({"dir": str(records.dir)})
        wait_for(lambda: records.done(after) == 1, what="a job queued after the restart")
        assert records.done(job_id) == 1
        assert manager.worker_pids == pids  # no worker crashed
    finally:
        manager.stop(20)
    assert client.get_all_managers() == []


def test_redis_frozen_for_a_while(private_redis: RedisServer, records: Records) -> None:
    client = Client(host="127.0.0.1", port=private_redis.port)
    manager = start(private_redis, num_workers=2)
    try:
        ids = client.queue_jobs({"dir": str(records.dir), "sleep": 0.05} for _ in range(20))
        private_redis.pause()
        time.sleep(2)
        private_redis.resume()
        wait_for(lambda: all(records.done(i) == 1 for i in ids), what="every job")
        assert client.get_failed_jobs() == []
    finally:
        manager.stop(20)


def test_manager_stopping_while_redis_is_down_keeps_jobs_for_its_successor(
    private_redis: RedisServer, records: Records
) -> None:
    client = Client(host="127.0.0.1", port=private_redis.port)
    manager = start(private_redis, graceful_timeout=0.2)
    job_id = client.queue_job({"dir": str(records.dir), "sleep": 30})
    wait_for(lambda: records.started(job_id) == 1, what="the job to start")
    private_redis.kill()
    manager.stop(30)
    assert manager.exit_code == 1
    private_redis.start()
    assert client.get_worker_pending_jobs("box:1") == [job_id]  # still there, not lost
    client.redis.delete("box:heartbeat")  # as if its lease had run out
    client.redis.hset(f"job:{job_id}", "sleep", "0")
    successor = start(private_redis)
    try:
        wait_for(lambda: records.done(job_id) == 1, what="the successor to run it")
    finally:
        successor.stop(20)


def test_redis_out_of_memory_pauses_work_without_losing_it(private_redis: RedisServer, records: Records) -> None:
    client = Client(host="127.0.0.1", port=private_redis.port)
    manager = start(private_redis)
    try:
        pids = manager.worker_pids
        job_id = client.queue_job({"dir": str(records.dir)})
        wait_for(lambda: records.done(job_id) == 1, what="a first job")
        # noeviction and no room: every write is refused with OOM, the idle
        # worker's claims included (they list it as idle).
        client.redis.config_set("maxmemory", 1)
        time.sleep(1.5)
        client.redis.config_set("maxmemory", 0)
        after = client.queue_job({"dir": str(records.dir)})
        wait_for(lambda: records.done(after) == 1, what="a job once Redis has room again")
        assert manager.worker_pids == pids  # nobody crashed
    finally:
        manager.stop(20)
