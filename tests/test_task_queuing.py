"""Task calls queued through a real Client on the suite's Redis: the hashes, the lists, the wake-ups, the CLI."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import redis
from test_cli import one_line_error

from qw import Client, tasks
from qw.call import Call
from qw.exceptions import ConfigError, JobDataError, UnknownWorker
from qw.handle import JobHandle

from conftest import run_cli, wait_for
from tests_support import commands_run, lasting_keys

TASK_FIELDS = {b"qw:task", b"qw:args", b"qw:queued_at", b"qw:origin", b"qw:history", b"qw:keep"}  # a task job keeps a record


@pytest.fixture
def sample(client: Client) -> Iterator[Any]:
    """tests/tasks_sample.py imported afresh, queuing through ``client``; the registry left as found."""
    saved = dict(tasks.registry)
    sys.modules.pop("tasks_sample", None)
    tasks.set_default_client(client)
    yield importlib.import_module("tasks_sample")
    tasks.set_default_client(None)
    sys.modules.pop("tasks_sample", None)
    tasks.registry.clear()
    tasks.registry.update(saved)


@pytest.fixture
def qwc(redis_server) -> Callable[..., Any]:
    def run(*args: str, input: str | None = None) -> Any:
        return run_cli("qw-client", "--host", "127.0.0.1", "--port", str(redis_server.port), *args, input=input)

    return run


def stored(client: Client, job_id: str) -> dict[bytes, bytes]:
    return client.redis.hgetall(f"job:{job_id}")


def queued(client: Client, key: str) -> list[str]:
    """Ids in a list, next to run first."""
    return [i.decode() for i in reversed(client.redis.lrange(key, 0, -1))]


def count_pipelines(client: Client, monkeypatch) -> list[int]:
    """The pipelines ``client`` executes (each one round trip), as the number of commands in each."""
    executed: list[int] = []
    make = client.redis.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        run = pipe.execute
        pipe.execute = lambda *a, **k: (executed.append(len(pipe.command_stack)), run(*a, **k))[1]
        return pipe

    monkeypatch.setattr(client.redis, "pipeline", pipeline)
    return executed


# -- what lands where ----------------------------------------------------------


def test_delay_lands_a_task_hash_without_data_fields_on_all_jobs(client: Client, sample) -> None:
    handle = sample.add.delay(4, 5)
    assert isinstance(handle, JobHandle) and handle.client is client
    assert client.get_all_queued_jobs() == [handle.id]
    fields = stored(client, handle.id)
    assert set(fields) == TASK_FIELDS  # no qw:enc, no data, no qw:kwargs without keyword arguments
    assert (fields[b"qw:task"], fields[b"qw:args"], fields[b"qw:origin"]) == (b"tasks_sample.add", b"[4,5]",
                                                                               b"all:jobs")
    assert abs(float(fields[b"qw:queued_at"]) - time.time()) < 60
    assert client.get_job(handle.id) == {}  # a task job has no data for get_job to show


def test_fire_with_keyword_arguments_writes_kwargs(client: Client, sample) -> None:
    job_id = sample.add.fire(1, b=[2, None]).id
    fields = stored(client, job_id)
    assert (fields[b"qw:args"], fields[b"qw:kwargs"]) == (b"[1]", b'{"b":[2,null]}')


def test_a_tasks_declared_queue_and_limits_come_with_it(client: Client, sample) -> None:
    job_id = sample.send_mail.delay("a@b.c", "hi").id
    assert queued(client, "all:queue:emails") == [job_id] and client.get_all_queued_jobs() == []
    fields = stored(client, job_id)
    assert fields[b"qw:origin"] == b"all:queue:emails"
    assert (fields[b"qw:max_attempts"], fields[b"qw:timeout"]) == (b"5", b"30.0")


def test_send_with_takes_every_option(client: Client, sample) -> None:
    handle = sample.add.send_with((1, 2), {}, queue="urgent", job_id="sw-1", max_attempts=1, timeout=2.5,
                                  client=client)
    assert handle == JobHandle("sw-1") and queued(client, "all:queue:urgent") == ["sw-1"]
    fields = stored(client, "sw-1")
    assert set(fields) == TASK_FIELDS | {b"qw:max_attempts", b"qw:timeout"}
    assert (fields[b"qw:origin"], fields[b"qw:max_attempts"], fields[b"qw:timeout"]) == (
        b"all:queue:urgent", b"1", b"2.5")
    sample.add.send_with((1, 2), queue="all", job_id="sw-2")
    assert client.get_all_queued_jobs() == ["sw-2"]


def test_send_with_routes_to_a_manager_and_to_a_registered_worker_only(client: Client, sample) -> None:
    to_manager = sample.send_mail.send_with(("a@b.c", "hi"), manager="box").id
    assert client.get_manager_queued_jobs("box") == [to_manager]
    assert stored(client, to_manager)[b"qw:origin"] == b"box:jobs"
    with pytest.raises(UnknownWorker, match="^worker 'box:1' is not registered$"):
        sample.add.send_with((1, 2), worker="box:1")
    client.register_worker("box", "box:1")
    to_worker = sample.add.send_with((1, 2), worker="box:1").id
    assert client.get_worker_pending_jobs("box:1") == [to_worker]
    assert queued(client, "all:queue:emails") == [] and client.get_all_queued_jobs() == []
    assert sorted(k.decode() for k in client.redis.keys("job:*")) == sorted([f"job:{to_manager}",
                                                                            f"job:{to_worker}"])


def test_a_job_class_queues_to_its_queue(client: Client, sample) -> None:
    job_id = sample.Report.delay("2026-11", pages=2).id
    assert queued(client, "all:queue:reports") == [job_id]
    fields = stored(client, job_id)
    assert (fields[b"qw:task"], fields[b"qw:args"], fields[b"qw:kwargs"]) == (
        b"tasks_sample.Report", b'["2026-11"]', b'{"pages":2}')


def test_map_sends_a_batch_in_one_round_trip(client: Client, sample, monkeypatch) -> None:
    sample.add.map([(0, 0)])  # loads the script
    pipelines = count_pipelines(client, monkeypatch)
    with commands_run(client.redis) as seen:
        handles = sample.add.map([(n, n) for n in range(250)])
    assert pipelines == [1]  # one pipeline of one EVALSHA
    # TIME once per batch: the "queued" event of the task jobs' records, on Redis's clock.
    assert seen() == {"evalsha": 1, "exists": 250, "hset": 250, "lpush": 250, "hincrby": 2, "time": 1}
    assert client.get_all_queued_jobs()[1:] == [h.id for h in handles]
    assert stored(client, handles[-1].id)[b"qw:args"] == b"[249,249]"


def test_map_to_a_named_queue_cuts_batches_of_a_thousand(client: Client, sample, monkeypatch) -> None:
    pipelines = count_pipelines(client, monkeypatch)
    handles = sample.send_mail.map([(f"{n}@b.c", "hi") for n in range(2500)], max_attempts=2)
    assert pipelines == [1, 1, 1]
    assert queued(client, "all:queue:emails") == [h.id for h in handles]
    assert stored(client, handles[1234].id)[b"qw:max_attempts"] == b"2"


def test_queue_calls_keeps_order_across_mixed_destinations(client: Client, monkeypatch) -> None:
    client.queue_call(Call("warm:up"))
    client.redis.flushall()
    destinations = [{"queue": "a"}, {"queue": "a"}, {}, {"queue": "a"}, {"manager": "box"}, {}, {}, {"queue": "b"}]
    calls = [Call("t", [n], **where) for n, where in enumerate(destinations)]
    calls.insert(1, Call("t", [1.5], {"k": 1}, queue="a"))  # another width in the same run
    pipelines = count_pipelines(client, monkeypatch)
    with commands_run(client.redis) as seen:
        ids = client.queue_calls(calls)
    # One script call per run of one destination and width (queue a holds
    # two widths in its first run), all in one pipeline: one round trip.
    assert pipelines == [8] and seen()["evalsha"] == 8
    by_list = {"all:queue:a": [0, 1, 2, 4], "all:jobs": [3, 6, 7], "box:jobs": [5], "all:queue:b": [8]}
    for key, positions in by_list.items():
        assert queued(client, key) == [ids[p] for p in positions], key
    assert stored(client, ids[1])[b"qw:kwargs"] == b'{"k":1}'


def test_queue_calls_in_small_batches(client: Client, monkeypatch) -> None:
    pipelines = count_pipelines(client, monkeypatch)
    ids = client.queue_calls([Call("t", [n]) for n in range(25)], batch_size=10)
    assert pipelines == [1, 1, 1] and client.get_all_queued_jobs() == ids
    with pytest.raises(ConfigError, match="batch_size must be a whole number of at least 1, got 0"):
        client.queue_calls([Call("t")], batch_size=0)
    with pytest.raises(TypeError, match="expected a qw.call.Call"):
        client.queue_calls([Call("t"), {"task": "t"}])  # type: ignore[list-item]
    assert len(client.get_all_queued_jobs()) == 25


def test_a_given_job_id_is_queued_once(client: Client, sample) -> None:
    assert sample.add.send_with((1, 2), job_id="once").id == "once"
    assert sample.add.send_with((3, 4), job_id="once").id == "once"
    ids = client.queue_calls([Call("t", [5], job_id="once"), Call("t", [6])])
    assert ids[0] == "once"
    assert client.get_all_queued_jobs() == ["once", ids[1]]
    assert stored(client, "once")[b"qw:args"] == b"[1,2]"


def test_an_unknown_worker_in_a_batch_is_refused(client: Client) -> None:
    with pytest.raises(UnknownWorker, match="'box:7'"):
        client.queue_calls([Call("t", [n], worker="box:7") for n in range(3)])
    assert lasting_keys(client) == []


# -- the client's own spellings ----------------------------------------------------


def test_enqueue_by_import_path_passes_every_keyword_to_the_task(client: Client) -> None:
    handle = client.enqueue("myapp.tasks:add", 4, 5, task="t", queue="q")
    assert isinstance(handle, JobHandle) and handle.client is client
    assert client.get_all_queued_jobs() == [handle.id]
    fields = stored(client, handle.id)
    assert (fields[b"qw:task"], fields[b"qw:args"], fields[b"qw:kwargs"]) == (
        b"myapp.tasks:add", b"[4,5]", b'{"task":"t","queue":"q"}')
    assert set(fields) == TASK_FIELDS | {b"qw:kwargs"}


def test_submit_by_name_with_every_option(client: Client) -> None:
    handle = client.submit("mail.send", ["a@b.c", "hi"], {"body": "x"}, queue="emails", job_id="s-1",
                           max_attempts=2, timeout=3)
    assert handle == JobHandle("s-1") and queued(client, "all:queue:emails") == ["s-1"]
    fields = stored(client, "s-1")
    assert (fields[b"qw:task"], fields[b"qw:args"], fields[b"qw:kwargs"]) == (
        b"mail.send", b'["a@b.c","hi"]', b'{"body":"x"}')
    assert (fields[b"qw:max_attempts"], fields[b"qw:timeout"]) == (b"2", b"3.0")
    assert client.submit("myapp.tasks:add", (1, 2), manager="box").id in client.get_manager_queued_jobs("box")
    with pytest.raises(ConfigError, match="not both"):
        client.submit("mail.send", queue="emails", manager="box")


def test_submit_does_not_borrow_a_declared_tasks_options(client: Client, sample) -> None:
    job_id = client.submit("mail.send", ["a@b.c", "hi"]).id  # declared with queue="emails", max_attempts=5
    assert client.get_all_queued_jobs() == [job_id]
    assert b"qw:max_attempts" not in stored(client, job_id)


def test_plain_jobs_go_to_named_queues_too(client: Client) -> None:
    job_id = client.queue_job({"n": 1}, queue="emails")
    assert queued(client, "all:queue:emails") == [job_id]
    assert stored(client, job_id)[b"qw:origin"] == b"all:queue:emails" and client.get_job(job_id) == {"n": 1}
    ids = client.queue_jobs([{"n": 2}, {"n": 3}], queue="emails", max_attempts=3)
    assert queued(client, "all:queue:emails") == [job_id, *ids]
    assert client.queue_job({"n": 4}, queue="all") == client.get_all_queued_jobs()[0]
    with pytest.raises(ConfigError, match="^a job goes to a queue or to a manager/worker, not both$"):
        client.queue_job({"n": 5}, "box", queue="emails")
    with pytest.raises(ConfigError, match="not both"):
        client.queue_jobs([{"n": 6}], worker="box:1", queue="emails")
    with pytest.raises(ConfigError, match="may hold only letters"):
        client.queue_job({"n": 7}, queue="a:b")
    assert len(queued(client, "all:queue:emails")) == 3 and len(client.get_all_queued_jobs()) == 1


def test_arguments_that_are_not_json_queue_nothing(client: Client, sample) -> None:
    with pytest.raises(JobDataError, match="argument 1 of tasks_sample.add is not JSON: set"):
        sample.add.delay({1}, 2)
    with pytest.raises(JobDataError, match="argument 1 of tasks_sample.add is not JSON: object"):
        sample.add.map([(1, 2), (object(), 3)])
    with pytest.raises(JobDataError, match="argument 1 of t is not JSON: NaN"):
        client.submit("t", [float("nan")])
    with pytest.raises(JobDataError, match="keyword argument 'when' of myapp:t is not JSON: date"):
        client.enqueue("myapp:t", when=__import__("datetime").date(2026, 1, 1))
    assert lasting_keys(client) == []


# -- waking an idle worker of a named queue ---------------------------------------


class Waiter:
    """The worker side, simulated: a real connection blocked in BLMOVE, listed in a queue's idle hash."""

    def __init__(self, client: Client, queue: str, name: str = "box:1") -> None:
        # A connection of its own, as a worker's waiting connection is.
        self.conn = redis.Redis(host="127.0.0.1", port=client.config.port)
        self.client, self.queue, self.name = client, queue, name
        self.woke_after: float | None = None
        self.thread: threading.Thread | None = None

    def block(self) -> None:
        """List ourselves as idle and block on a list nobody pushes to, for up to 30 s."""
        client_id = self.conn.client_id()
        self.client.redis.hset(f"all:queue:{self.queue}:idle", self.name, client_id)
        self.woke_after = None

        def wait() -> None:
            started = time.monotonic()
            self.conn.blmove("nothing:here", f"{self.name}:jobs", 30)
            self.woke_after = time.monotonic() - started

        self.thread = threading.Thread(target=wait, daemon=True)
        self.thread.start()
        wait_for(lambda: self._blocked(client_id), timeout=5, what="the waiter to block")

    def _blocked(self, client_id: int) -> bool:
        return any(c["id"] == str(client_id) and c["cmd"] == "blmove" for c in self.client.redis.client_list())

    def woken(self) -> float:
        assert self.thread is not None
        self.thread.join(5)
        assert self.woke_after is not None, "the waiter was not woken"
        return self.woke_after


@pytest.fixture
def waiter(client: Client) -> Iterator[Waiter]:
    simulated = Waiter(client, "emails")
    yield simulated
    simulated.conn.close()


@pytest.mark.parametrize("how", ["queue_call", "queue_calls", "queue_job", "queue_jobs"])
def test_a_job_for_a_named_queue_wakes_an_idle_worker_at_once(client: Client, sample, waiter: Waiter,
                                                                how: str) -> None:
    send = {
        "queue_call": lambda: sample.send_mail.delay("a@b.c", "hi"),
        "queue_calls": lambda: sample.send_mail.map([("a@b.c", "hi"), ("d@e.f", "yo")]),
        "queue_job": lambda: client.queue_job({"n": 1}, queue="emails"),
        "queue_jobs": lambda: client.queue_jobs([{"n": 1}], queue="emails"),
    }[how]
    # Twice: the first time the producer learns who is idle; the second time
    # it guesses that one and unblocks it behind its queuing call.
    for _ in range(2):
        waiter.block()
        send()
        assert waiter.woken() < 2  # it would have slept 30 s
        assert not client.redis.hexists("all:queue:emails:idle", "box:1")  # taken off: no other job wakes it


def test_a_job_for_another_queue_wakes_nobody(client: Client, sample, waiter: Waiter) -> None:
    waiter.block()
    sample.add.send_with((1, 2), queue="reports")
    sample.add.delay(1, 2)
    client.queue_job({"n": 1}, manager="box")
    time.sleep(0.3)
    assert waiter.woke_after is None
    assert client.redis.hget("all:queue:emails:idle", "box:1") is not None
    client.queue_job({"n": 1}, queue="emails")
    assert waiter.woken() < 2


# -- qw-client queue task -------------------------------------------------------------


def test_cli_queue_task_prints_the_id(client: Client, qwc) -> None:
    result = qwc("queue", "task", "myapp.tasks:add", "[4, 5]", "--kwargs", '{"when": "monday"}')
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert client.get_all_queued_jobs() == [job_id]
    fields = stored(client, job_id)
    assert (fields[b"qw:task"], fields[b"qw:args"], fields[b"qw:kwargs"]) == (
        b"myapp.tasks:add", b"[4,5]", b'{"when":"monday"}')
    [bare] = qwc("queue", "task", "mail.send").stdout.split()
    assert stored(client, bare)[b"qw:args"] == b"[]" and b"qw:kwargs" not in stored(client, bare)


def test_cli_queue_task_options(client: Client, qwc) -> None:
    result = qwc("--queue=emails", "--id=t-1", "--max-attempts=2", "--timeout=9", "queue", "task", "mail.send",
                 '["a@b.c", "hi"]')
    assert result.returncode == 0 and result.stdout.strip() == "t-1"
    fields = stored(client, "t-1")
    assert queued(client, "all:queue:emails") == ["t-1"]
    assert (fields[b"qw:max_attempts"], fields[b"qw:timeout"]) == (b"2", b"9.0")
    assert qwc("--id=t-1", "queue", "task", "mail.send", "[1]").stdout.strip() == "t-1"  # exists: not again
    assert stored(client, "t-1")[b"qw:args"] == b'["a@b.c","hi"]'
    to_manager = qwc("queue", "task", "mail.send", "[]", "box").stdout.strip()
    assert client.get_manager_queued_jobs("box") == [to_manager]
    client.register_worker("box", "box:1")
    to_worker = qwc("--worker=box:1", "queue", "task", "mail.send").stdout.strip()
    assert client.get_worker_pending_jobs("box:1") == [to_worker]
    one_line_error(qwc("--worker=box:2", "queue", "task", "mail.send"), "worker 'box:2' is not registered")


def test_cli_queue_string_and_file_take_a_queue(client: Client, qwc) -> None:
    one = qwc("--queue=emails", "queue", "string", '{"n": 1}').stdout.strip()
    many = qwc("--queue=emails", "queue", "file", "-", input='{"n": 2}\n{"n": 3}\n').stdout.split()
    assert queued(client, "all:queue:emails") == [one, *many]
    assert client.get_job(many[1]) == {"n": 3}


@pytest.mark.parametrize("args, message", [
    (["queue", "task", "t", '{"a": 1}'], "task arguments must be a JSON array, not an object"),
    (["queue", "task", "t", "4"], "task arguments must be a JSON array, not a number"),
    (["queue", "task", "t", "[1,"], "task arguments: invalid JSON"),
    (["queue", "task", "t", "[NaN]"], "task arguments: invalid JSON: NaN is not JSON"),
    (["--kwargs=[1]", "queue", "task", "t"], "--kwargs must be a JSON object, not an array"),
    (["--kwargs={nope", "queue", "task", "t"], "--kwargs: invalid JSON"),
    (["--kwargs", '{"x": Infinity}', "queue", "task", "t"], "--kwargs: invalid JSON: Infinity is not JSON"),
    (["--queue=a:b", "queue", "task", "t"], "queue name 'a:b' may hold only letters"),
    (["--queue=emails", "queue", "task", "t", "[]", "box"], "goes to a queue or to a manager/worker, not both"),
    (["queue", "task", "a b"], "task name 'a b' must not contain whitespace"),
    (["queue", "task", "t", "[]", "all"], "manager name 'all' is reserved"),
    (["--max-attempts=0", "queue", "task", "t"], "--max-attempts must be at least 1"),
    (["--queue=a b", "queue", "string", "{}"], "queue name 'a b' may hold only letters"),
    (["--queue=emails", "queue", "string", "{}", "box"], "a job goes to a queue or to a manager/worker, not both"),
    (["--queue=", "queue", "file", "-"], "queue name must not be empty"),
    (["--kwargs={}", "queue", "string", "{}"], "--kwargs is for 'queue task'"),
])
def test_cli_bad_input_is_one_line_and_queues_nothing(client: Client, qwc, args: list[str], message: str) -> None:
    one_line_error(qwc(*args, input='{"n": 1}\n'), message)
    assert lasting_keys(client) == []
