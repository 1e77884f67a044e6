"""Priorities within a queue: lower runs sooner, FIFO among equals, 0 is the plain list.

Claims here go through the workers' own claim scripts (``Claimer``) against
the session's Redis, so the order asserted is the order workers see.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Optional

import pytest

import qw
from qw import Client
from qw.claim import Claimer
from qw.recovery import requeue

from conftest import run_cli, wait_for
from tests_support import commands_run


def claimer(client: Client, worker: str = "m:1", queues: Optional[list] = None) -> Claimer:
    manager = worker.split(":")[0]
    client.register_worker(manager, worker)
    return Claimer(client.redis, client.scripts, client.keys, manager, worker, queues=queues)


def drain(c: Claimer) -> list[str]:
    order, ack = [], None
    while True:
        job = c.claim(ack)
        if job is None:
            return order
        order.append(job.id)
        ack = job


def test_exact_order_over_ten_thousand_jobs_with_twenty_levels(client: Client) -> None:
    rng = random.Random(7)
    levels = [-1_000_000, -5000, -100, -7, -3, -2, -1, 0, 0, 1, 2, 3, 5, 8, 13, 100, 999, 5000, 99_999, 1_000_000]
    expected: list[tuple[int, int, str]] = []
    for n in range(10_000):
        level = rng.choice(levels)
        job_id = client.queue_job({"n": n}, priority=level or None)
        expected.append((level, n, job_id))
    expected.sort()  # by priority, then queue order: FIFO among equals
    assert drain(claimer(client)) == [job_id for _, _, job_id in expected]
    assert client.redis.llen("all:jobs") == 0 and not client.redis.exists("all:jobs:prio")


def test_a_plain_producer_lpush_is_priority_zero(client: Client) -> None:
    late = client.queue_job({"x": 1}, priority=10)
    pipe = client.redis.pipeline(transaction=True)
    pipe.hset("job:plain", "x", "1")
    pipe.lpush("all:jobs", "plain")
    pipe.execute()
    urgent = client.queue_job({"x": 1}, priority=-10)
    assert drain(claimer(client)) == [urgent, "plain", late]


def test_priorities_order_each_queue_and_the_queues_keep_their_order(client: Client) -> None:
    low = client.queue_job({"q": "all"}, priority=-50)
    manager_late = client.queue_job({"q": "m"}, manager="m", priority=5)
    manager_first = client.queue_job({"q": "m"}, manager="m", priority=-5)
    named = client.queue_job({"q": "emails"}, queue="emails", priority=-1000)
    c = claimer(client, queues=[("emails", None), ("all", None)])
    # The manager's own queue first, then emails, then all:jobs; priority within each.
    assert drain(c) == [manager_first, manager_late, named, low]


def test_task_priority_and_send_with(client: Client) -> None:
    from qw.tasks import set_default_client

    @qw.task(name="prio.urgent", priority=-10)
    def urgent() -> None: ...

    @qw.task(name="prio.normal")
    def normal() -> None: ...

    set_default_client(client)
    try:
        a = normal.delay()
        b = urgent.delay()
        c = normal.send_with(priority=-20)
        d = urgent.map([(), ()])
    finally:
        set_default_client(None)
    assert drain(claimer(client)) == [c.id, b.id, d[0].id, d[1].id, a.id]


def test_a_queue_without_prioritised_jobs_pays_no_extra_command(client: Client) -> None:
    ids = client.queue_jobs({"n": n} for n in range(100))
    client.queue_job({"n": "other"}, manager="n", priority=-1)  # another queue has some
    c = claimer(client)
    c.ack_id("warm-up")
    with commands_run(client.redis) as seen:
        assert drain(c) == ids
    counts = seen()
    assert not {"zrange", "zcard", "zrem", "rpop", "incr"} & set(counts), counts


def test_an_idle_worker_wakes_at_once_for_a_prioritised_job(client: Client, start_manager: Callable,
                                                             records: Any) -> None:
    start_manager(num_workers=1, queues=["emails", "all"])
    wait_for(lambda: client.redis.hlen("all:queue:emails:idle") == 1, what="the worker to wait")
    for queue in ("emails", None):
        begun = time.monotonic()
        job_id = client.queue_job({"dir": str(records.dir)}, queue=queue, priority=-3)
        wait_for(lambda job_id=job_id: records.done(job_id) == 1, timeout=5, what="the prioritised job")
        assert time.monotonic() - begun < 1.0


def test_set_priority_moves_a_queued_job(client: Client) -> None:
    first = client.queue_job({"n": 1})
    second = client.queue_job({"n": 2})
    third = client.queue_job({"n": 3}, priority=4)
    assert client.set_priority(third, -1) is True
    assert client.set_priority(first, 9) is True
    assert client.set_priority(second, 0) is True  # as if queued now, at priority 0
    assert client.get_all_queued_jobs() == [third, second, first]
    c = claimer(client)
    job = c.claim()
    assert job.id == third
    assert client.set_priority(third, 5) is False  # running: not queued any more
    with pytest.raises(qw.JobNotFound):
        client.set_priority("nope", 1)
    client.register_worker("m", "m:2")
    to_worker = client.queue_job({"n": 4}, worker="m:2")
    with pytest.raises(qw.QwError, match="queued to one worker"):
        client.set_priority(to_worker, 1)
    with pytest.raises(qw.QwError, match="arrival order"):
        client.queue_job({"n": 5}, worker="m:2", priority=1)


def test_cancelling_the_last_prioritised_job_takes_the_marker_with_it(client: Client) -> None:
    plain = client.queue_job({"n": 1})
    prioritised = client.queue_job({"n": 2}, priority=-1)
    assert client.cancel(prioritised) is True
    assert client.redis.lrange("all:jobs", 0, -1) == [plain.encode()]
    assert not client.redis.exists("all:jobs:prio")
    assert drain(claimer(client)) == [plain]


def test_a_worker_that_dies_holding_the_marker_gives_it_back(client: Client) -> None:
    prioritised = client.queue_job({"n": 1}, priority=-1)
    c = claimer(client)
    moved = c.wait(0.1)  # the BLMOVE an idle worker does: it takes the marker into its own list
    assert moved.startswith("\0qw:prio:")
    requeue(client, "m", "m:1", keep_own=True, cause="killed", max_attempts=3)
    assert drain(claimer(client, "m:2")) == [prioritised]


def test_a_blmove_that_brings_the_marker_still_claims_the_prioritised_job(client: Client) -> None:
    c = claimer(client)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(c.wait_and_claim(5)))
    waiter.start()
    time.sleep(0.2)
    prioritised = client.queue_job({"n": 1}, priority=-7)
    waiter.join(5)
    assert got and got[0] is not None and got[0].id == prioritised


def test_bad_priorities_are_refused(client: Client, redis_server: Any) -> None:
    with pytest.raises(qw.QwError, match="priority must be a whole number"):
        client.queue_job({"n": 1}, priority=1.5)
    with pytest.raises(qw.QwError, match="priority must be between"):
        client.queue_job({"n": 1}, priority=2**40)
    port = ["qw-client", "--host=127.0.0.1", f"--port={redis_server.port}"]
    bad = run_cli(*port, "queue", "string", "--priority=soon", '{"n": 1}')
    assert (bad.returncode, bad.stderr.strip()) == (1, "qw-client: error: --priority must be a whole number, got 'soon'")
    assert client.redis.dbsize() == 0
    ok = run_cli(*port, "queue", "string", "--priority=-100", '{"n": 1}')
    job_id = ok.stdout.strip()
    assert client.redis.hget(f"job:{job_id}", "qw:priority") == b"-100"
    moved = run_cli(*port, "priority", job_id, "3")
    assert (moved.returncode, moved.stdout.strip()) == (0, f"{job_id}: priority 3")
