import pickle

import pytest

from qw import Client
from qw.exceptions import ConfigError, ConnectionFailed, JobDataError, UnknownWorker

from conftest import Records, wait_for
from tests_support import commands_run, lasting_keys


def test_queue_job_writes_hash_and_id_together(client: Client) -> None:
    job_id = client.queue_job({"a": 1, "b": [True, None]})
    assert client.get_all_queued_jobs() == [job_id]
    stored = client.redis.hgetall(f"job:{job_id}")
    assert stored[b"a"] == b"1" and stored[b"b"] == b"[true,null]" and stored[b"qw:enc"] == b"json"
    assert client.get_job(job_id) == {"a": 1, "b": [True, None]}


def test_queue_order_is_fifo(client: Client) -> None:
    ids = [client.queue_job({"n": n}) for n in range(3)]
    assert client.get_all_queued_jobs() == ids
    assert client.redis.lrange("all:jobs", 0, -1) == [i.encode() for i in reversed(ids)]


def test_bad_data_queues_nothing(client: Client) -> None:
    with pytest.raises(JobDataError):
        client.queue_job(["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(JobDataError):
        client.queue_jobs([{"ok": 1}, {"bad": object()}])
    assert lasting_keys(client) == []


def test_a_given_job_id_is_queued_once(client: Client) -> None:
    assert client.queue_job({"v": 1}, job_id="order-7") == "order-7"
    client.queue_job({"v": 2}, job_id="order-7")
    assert client.get_all_queued_jobs() == ["order-7"]
    assert client.get_job("order-7") == {"v": 1}


def test_queue_to_manager_and_to_worker(client: Client) -> None:
    to_manager = client.queue_job({"x": 1}, manager="box")
    assert client.get_manager_queued_jobs("box") == [to_manager]
    with pytest.raises(UnknownWorker, match="box:1"):
        client.queue_job({"x": 2}, worker="box:1")
    client.register_worker("box", "box:1")
    to_worker = client.queue_job({"x": 2}, worker="box:1")
    assert client.get_worker_pending_jobs("box:1") == [to_worker]
    assert client.get_all_queued_jobs() == []
    with pytest.raises(ConfigError):
        client.queue_job({"x": 3}, manager="all")


def test_queue_jobs_sends_a_batch_in_one_round_trip(client: Client) -> None:
    client.queue_jobs([{"warm": "scripts loaded"}])
    with commands_run(client.redis) as seen:
        ids = client.queue_jobs({"n": n} for n in range(250))
    assert len(set(ids)) == 250
    assert client.get_all_queued_jobs()[1:] == ids
    assert client.get_job(ids[-1]) == {"n": 249}
    # One EVALSHA for the whole batch; nothing else was asked (the other
    # counts are the script's own commands: `queued` is counted once per
    # batch in this minute's and this day's statistics).
    assert seen() == {"evalsha": 1, "exists": 250, "hset": 250, "lpush": 250, "hincrby": 2}


def test_queue_jobs_of_different_shapes_and_a_given_id_in_the_batch(client: Client) -> None:
    client.queue_job({"x": 0}, job_id="known")
    ids = client.queue_jobs([{"a": 1}, {"a": 1, "b": [2]}, {}, {"c": None}], max_attempts=2)
    assert client.get_all_queued_jobs()[1:] == ids
    assert [client.get_job(i) for i in ids] == [{"a": 1}, {"a": 1, "b": [2]}, {}, {"c": None}]
    assert client.redis.hget(f"job:{ids[2]}", "qw:max_attempts") == b"2"


def test_queue_jobs_survives_a_flushed_script_cache(client: Client) -> None:
    client.queue_job({"warm": 1})
    client.redis.script_flush()
    ids = client.queue_jobs([{"n": 1}, {"n": 2}])
    assert client.get_all_queued_jobs()[1:] == ids


def test_fetch_follows_claim_order(client: Client) -> None:
    client.register_worker("box", "box:1")
    shared = client.queue_job({"q": "all"})
    mine = client.queue_job({"q": "manager"}, manager="box")
    own = client.queue_job({"q": "worker"}, worker="box:1")
    order = []
    for _ in range(3):
        job_id, data = client.fetch_next_job("box", "box:1", timeout=1)
        assert client.get_worker_pending_jobs("box:1")[0] == job_id  # stays while it runs
        order.append((job_id, data["q"]))
        assert client.finish_job(job_id, "box:1")
    assert order == [(own, "worker"), (mine, "manager"), (shared, "all")]
    assert lasting_keys(client) == [b"box:workers"]  # only that left: acknowledged hashes are gone
    assert client.fetch_next_job("box", "box:1", timeout=0.1) is None


def test_finish_job_of_another_worker_changes_nothing(client: Client) -> None:
    job_id = client.queue_job({"a": 1})
    client.fetch_next_job("box", "box:1", timeout=1)
    assert client.finish_job(job_id, "box:2") is False
    assert client.get_worker_pending_jobs("box:1") == [job_id]
    assert client.get_job(job_id) == {"a": 1}


def test_dangling_id_goes_to_failed_with_the_reason(client: Client) -> None:
    client.redis.lpush("all:jobs", "ghost")
    real = client.queue_job({"a": 1})
    client.redis.lpush("all:jobs", "ghost2")  # taken last
    job_id, _data = client.fetch_next_job("box", "box:1", timeout=1)
    assert job_id == real
    failed = {f.id: f for f in client.get_failed_jobs()}
    assert set(failed) == {"ghost"}
    assert "job:ghost did not exist" in failed["ghost"].error


def test_undecodable_hash_goes_to_failed_with_the_reason(client: Client) -> None:
    client.redis.hset("job:bad", mapping={"qw:enc": "json", "x": "{oops"})
    client.redis.lpush("all:jobs", "bad")
    assert client.fetch_next_job("box", "box:1", timeout=0.1) is None
    [failed] = client.get_failed_jobs()
    assert failed.id == "bad" and "field 'x' is not valid JSON" in failed.error
    assert client.get_worker_pending_jobs("box:1") == []


def test_registration_and_inspection(client: Client) -> None:
    client.register_manager("box")
    client.register_manager("alpha")
    for n in (10, 2, 1):
        client.register_worker("box", f"box:{n}")
    assert client.get_all_managers() == ["alpha", "box"]
    assert client.get_manager_workers("box") == ["box:1", "box:2", "box:10"]
    client.queue_job({"a": 1}, worker="box:2")
    assert client.get_all_pending_jobs() == {"box:1": [], "box:2": [client.get_worker_pending_jobs("box:2")[0]],
                                             "box:10": []}
    client.deregister_worker("box", "box:10")
    client.deregister_manager("alpha")
    assert client.get_manager_workers("box") == ["box:1", "box:2"]
    assert client.get_all_managers() == ["box"]
    with pytest.raises(ConfigError):
        client.register_manager("job")


def test_names_and_ids_are_str(client: Client) -> None:
    client.register_manager("box")
    client.register_worker("box", "box:1")
    client.queue_job({"a": 1})
    values = [*client.get_all_managers(), *client.get_manager_workers("box"), *client.get_all_queued_jobs()]
    assert all(type(v) is str for v in values)


def test_namespace_keeps_apart(redis_server, client: Client) -> None:
    other = Client(port=redis_server.port, namespace="{app}:")
    job_id = other.queue_job({"a": 1})
    assert client.get_all_queued_jobs() == []
    assert other.get_all_queued_jobs() == [job_id]
    assert client.redis.exists("{app}:all:jobs", f"{{app}}:job:{job_id}") == 2


def test_client_pickles_by_address(redis_server, client: Client) -> None:
    job_id = client.queue_job({"a": 1})
    copy = pickle.loads(pickle.dumps(client))
    assert copy.get_all_queued_jobs() == [job_id]
    assert copy.redis is not client.redis


def test_url_and_environment_choose_the_server(redis_server, monkeypatch) -> None:
    assert Client(url=redis_server.url).ping()
    monkeypatch.setenv("QW_REDIS_URL", redis_server.url)
    assert Client(port=1).ping()  # the URL wins over host and port


def test_unreachable_redis_names_the_address() -> None:
    from conftest import free_port

    port = free_port()
    with pytest.raises(ConnectionFailed, match=f"cannot reach Redis at 127.0.0.1:{port}/0"):
        Client(host="127.0.0.1", port=port).queue_job({"a": 1})


def test_queue_job_is_one_round_trip(client: Client) -> None:
    client.queue_job({"warm": 1})
    with commands_run(client.redis) as seen:
        for n in range(20):
            client.queue_job({"n": n}, manager="box")  # no idle worker to wake
    top_level = {k: v for k, v in seen().items() if k not in ("exists", "hset", "lpush", "hrandfield", "hincrby", "expire")}
    assert top_level == {"evalsha": 20}


@pytest.mark.parametrize("route", ["manager", "worker"])
def test_waking_the_idle_worker_woken_last_time_costs_no_extra_round_trip(
        client: Client, records: Records, start_manager, route: str) -> None:
    start_manager(name="box", num_workers=1)
    wait_for(lambda: client.get_manager_workers("box") == ["box:1"], what="the worker")
    target = {"manager": "box"} if route == "manager" else {"worker": "box:1"}
    warm = client.queue_job({"dir": str(records.dir)})  # connects, loads the script
    wait_for(lambda: records.done(warm) == 1, what="the warm-up job")
    conn = client._producer._direct()._conn
    writes: list[int] = []
    send = conn.send_packed_command
    conn.send_packed_command = lambda *args, **kwargs: (writes.append(1), send(*args, **kwargs))[1]
    per_job = []
    for _ in range(4):
        wait_for(lambda: client.redis.hexists("box:idle", "box:1"), what="the worker to be idle")
        writes.clear()
        job_id = client.queue_job({"dir": str(records.dir)}, **target)
        per_job.append(len(writes))
        wait_for(lambda j=job_id: records.done(j) == 1, what="the job")
    # The first time the producer learns who is idle: a second round trip to
    # wake it. Then it wakes the same worker behind its queuing call.
    assert per_job == [2, 1, 1, 1]
