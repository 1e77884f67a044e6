"""Tasks without a worker: declaring, calling, queuing (to a stand-in), resolving, loading.

The stand-in client records the calls handed to it, to check what a task
hands the client before anything reaches Redis; tests/test_task_queuing.py
and tests/test_task_running.py queue and run tasks through a real Redis.
"""

from __future__ import annotations

import collections
import datetime
import importlib
import inspect
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

import qw
from qw import tasks
from qw.call import Call, decode_arguments
from qw.dispatch import AllowList, Dispatcher, Refused, Resolved, outcome
from qw.exceptions import ConfigError, JobDataError, QwError, TargetError
from qw.handle import JobHandle
from qw.keys import Keys
from qw.loading import FUNCTION, MODULE, classify, is_module, load_task_modules
from qw.queues import QueueOrder, parse_queues

HERE = __file__
SAMPLES = ("tasks_sample", "tasks_none", "tasks_pkg", "tasks_pkg.mail")
SAMPLE_NAMES = ["mail.send", "tasks_sample.Report", "tasks_sample.add"]


class StandIn:
    """Takes the place of the client's queue_call / queue_calls: records what it is handed."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.batches: list[list[Call]] = []

    def queue_call(self, call: Call) -> str:
        self.calls.append(call)
        return f"id-{len(self.calls)}"

    def queue_calls(self, calls: list[Call]) -> list[str]:
        self.batches.append(list(calls))
        return [f"batch-{i}" for i in range(len(calls))]


@pytest.fixture(autouse=True)
def isolated_registry():
    """Each test declares into a registry it leaves as it found it, and imports the samples afresh."""
    saved = dict(tasks.registry)
    for name in SAMPLES:
        sys.modules.pop(name, None)
    yield
    tasks.registry.clear()
    tasks.registry.update(saved)
    for name in SAMPLES:
        sys.modules.pop(name, None)
    tasks.set_default_client(None)


@pytest.fixture
def sample():
    return importlib.import_module("tasks_sample")


@pytest.fixture
def client() -> StandIn:
    stand_in = StandIn()
    tasks.set_default_client(stand_in)
    return stand_in


def place_below(lines: int = 1) -> str:
    """``file:line`` of the line ``lines`` below the caller's, in this file."""
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + lines}"


# -- declaring -----------------------------------------------------------


def test_a_bare_task_is_named_module_dot_qualname_and_runs_inline(sample) -> None:
    assert isinstance(sample.add, tasks.Task)
    assert sample.add.name == "tasks_sample.add"
    assert sample.add(4, 5) == 9
    assert (sample.add.queue, sample.add.max_attempts, sample.add.timeout) == (None, None, None)
    assert sample.add.__doc__ == "Add two numbers." and sample.add.__name__ == "add"
    assert tasks.registry["tasks_sample.add"] is sample.add


def test_a_task_in_a_function_is_named_with_its_qualname() -> None:
    @qw.task
    def double(x):
        return 2 * x

    assert double.name == "test_tasks.test_a_task_in_a_function_is_named_with_its_qualname.<locals>.double"
    assert double(21) == 42


def test_declared_options_are_kept_and_read_only(sample) -> None:
    send = sample.send_mail
    assert (send.name, send.queue, send.max_attempts, send.timeout) == ("mail.send", "emails", 5, 30)
    assert dict(send.options) == {"name": "mail.send", "queue": "emails", "max_attempts": 5, "timeout": 30}
    with pytest.raises(TypeError):
        send.options["queue"] = "other"  # type: ignore[index]
    assert send("a@b.c", "hi") == {"to": "a@b.c", "subject": "hi", "body": ""}


def test_an_unknown_option_is_refused_where_the_task_is_declared() -> None:
    place = place_below(2)
    with pytest.raises(ConfigError) as info:
        qw.task(retries=3, queue="x")  # refused before there is a function to decorate
    assert str(info.value) == (f"unknown task option 'retries' at {place}; "
                               "allowed: max_attempts, name, priority, queue, result_ttl, tags, timeout")


def test_an_unknown_option_fails_the_decoration_itself() -> None:
    with pytest.raises(ConfigError, match=r"^unknown task options 'depends', 'retries' at .*test_tasks.py:\d+; "
                                          r"allowed: max_attempts, name, priority, queue, result_ttl, tags, timeout$"):
        @qw.task(retries=3, depends=1)
        def never():
            pass


@pytest.mark.parametrize("options, says", [
    ({"queue": "bad queue"}, "task option queue: queue name 'bad queue' may hold only letters, digits"),
    ({"queue": "a:b"}, "task option queue: queue name 'a:b' may hold only"),
    ({"max_attempts": 0}, "task option max_attempts: max_attempts must be at least 1, got 0"),
    ({"max_attempts": True}, "task option max_attempts: max_attempts must be a whole number, got True"),
    ({"timeout": -1}, "task option timeout: timeout must be positive, got -1"),
    ({"name": "pkg.mod:fn"}, "task option name: task name 'pkg.mod:fn' must not contain ':'"),
    ({"name": "two words"}, "task option name: task name 'two words' must not contain whitespace"),
])
def test_a_bad_option_value_is_refused_with_the_place(options: dict[str, Any], says: str) -> None:
    place = place_below(2)
    with pytest.raises(ConfigError) as info:
        qw.task(**options)
    assert str(info.value).startswith(says)
    assert str(info.value).endswith(f"(at {place})")


def test_two_tasks_under_one_name_fail_naming_both_places() -> None:
    first_place = place_below()
    @qw.task(name="dup.same")
    def first():
        pass

    second_place = place_below(2)
    with pytest.raises(ConfigError) as info:
        @qw.task(name="dup.same")
        def second():
            pass
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("task name 'dup.same' is registered twice: ")
    assert f"at {first_place} (test_tasks.{first.__qualname__})" in message
    assert f"at {second_place} (test_tasks.{first.__qualname__[:-5]}second)" in message
    assert tasks.registry["dup.same"] is first


def test_redeclaring_the_same_function_is_not_a_duplicate(sample) -> None:
    old_add = sample.add
    importlib.reload(sample)  # the same module object, its code run again
    assert sample.add is not old_add
    assert tasks.registry["tasks_sample.add"] is sample.add


def test_a_module_imported_afresh_replaces_its_declarations(tmp_path: Path, monkeypatch) -> None:
    # A manager's reload drops the module and imports it again; here a task
    # name also moved from one function to another meanwhile.
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "reloaded_tasks.py"
    source.write_text("import qw\n\n@qw.task(name='moving.task')\ndef before():\n    return 1\n")
    old = importlib.import_module("reloaded_tasks")
    monkeypatch.delitem(sys.modules, "reloaded_tasks")
    source.write_text("import qw\n\n\n@qw.task(name='moving.task')\ndef after():\n    return 2\n")
    importlib.invalidate_caches()
    new = importlib.import_module("reloaded_tasks")
    assert new is not old and not old.before.live and new.after.live
    assert tasks.registry["moving.task"] is new.after
    assert tasks.registry["moving.task"]() == 2


@pytest.mark.parametrize("thing, says", [
    (type("Plain", (), {}), "qw.task declares functions; for the class Plain, subclass qw.Job"),
    (42, "qw.task needs a function, got 42"),
])
def test_what_is_not_a_function_is_refused(thing: Any, says: str) -> None:
    with pytest.raises((ConfigError, TypeError), match=f"^{says}$"):
        qw.task(thing)


def test_async_functions_and_tasks_are_refused(sample) -> None:
    async def later():
        pass

    with pytest.raises(ConfigError, match="async def is not supported"):
        qw.task(later)
    with pytest.raises(ConfigError, match="^tasks_sample.add is already a task$"):
        qw.task(sample.add)


# -- class-based tasks -----------------------------------------------------


def test_a_job_subclass_is_a_task_named_after_the_class(sample) -> None:
    task = sample.Report.__task__
    assert task.name == "tasks_sample.Report" and task.queue == "reports"
    assert tasks.registry["tasks_sample.Report"] is task
    assert task.job_class is sample.Report
    # a fresh instance per run: runs is 1 each time
    assert sample.Report.call_inline("2026-11") == {"month": "2026-11", "pages": 1, "runs": 1}
    assert sample.Report.call_inline("2026-12", pages=3) == {"month": "2026-12", "pages": 3, "runs": 1}


def test_job_options_inherit_but_the_name_does_not() -> None:
    class Base(qw.Job):  # no work(): an abstract base, no task
        queue = "slow"
        max_attempts = 2

    class Named(Base):
        name = "custom.named"

        def work(self):
            return "named"

    class Child(Named):
        timeout = 5

    assert not hasattr(Base, "__task__")
    assert Named.__task__.name == "custom.named"
    assert Child.__task__.name == "test_tasks.test_job_options_inherit_but_the_name_does_not.<locals>.Child"
    assert (Child.__task__.queue, Child.__task__.max_attempts, Child.__task__.timeout) == ("slow", 2, 5)
    assert Child.call_inline() == "named"


def test_a_bad_job_option_is_refused_at_the_class_statement() -> None:
    place = place_below(2)
    with pytest.raises(ConfigError) as info:
        class Broken(qw.Job):
            queue = "no spaces please"

            def work(self):
                pass
    assert str(info.value).startswith("task option queue: queue name 'no spaces please'")
    assert str(info.value).endswith(f"(at {place})")


def test_two_job_classes_under_one_name_fail_naming_both_places() -> None:
    first_place = place_below()
    class One(qw.Job):
        name = "jobs.same"

        def work(self):
            pass

    second_place = place_below(2)
    with pytest.raises(ConfigError) as info:
        class Two(qw.Job):
            name = "jobs.same"

            def work(self):
                pass
    assert f"at {first_place} (test_tasks." in str(info.value)
    assert f"at {second_place} (test_tasks." in str(info.value)


def test_job_classes_queue_through_their_task(sample, client: StandIn) -> None:
    handle = sample.Report.delay("2026-11", pages=2)
    assert handle == JobHandle("id-1")
    assert client.calls[0].meta() == {"qw:history": "", "qw:keep": "1", "qw:task": "tasks_sample.Report", "qw:args": '["2026-11"]',
                                      "qw:kwargs": '{"pages":2}'}
    assert client.calls[0].queue == "reports"
    sample.Report.send_with(args=["2026-10"], queue="urgent")
    assert client.calls[1].queue == "urgent"
    sample.Report.map([("a",), ("b",)])
    assert [c.args for c in client.batches[0]] == [["a"], ["b"]]
    with pytest.raises(TypeError, match=r"^tasks_sample.Report\(month, \*, pages=1\): missing a required argument"):
        sample.Report.delay()


# -- queuing ---------------------------------------------------------------


def test_delay_and_fire_hand_one_call_to_the_client(sample, client: StandIn) -> None:
    handle = sample.add.delay(4, 5)
    assert isinstance(handle, JobHandle) and handle.id == "id-1" and str(handle) == "id-1"
    assert handle.client is client
    assert sample.add.fire(1, b=2).id == "id-2"
    first, second = client.calls
    # qw:history first: a task job keeps a record (the enqueue script fills it in); no kwargs: no field
    assert first.meta() == {"qw:history": "", "qw:keep": "1", "qw:task": "tasks_sample.add", "qw:args": "[4,5]"}
    assert second.meta() == {"qw:history": "", "qw:keep": "1", "qw:task": "tasks_sample.add", "qw:args": "[1]",
                             "qw:kwargs": '{"b":2}'}
    assert (first.queue, first.manager, first.worker, first.job_id) == (None, None, None, None)


def test_send_with_takes_every_option_and_defaults_to_the_tasks(sample) -> None:
    stand_in = StandIn()
    sample.send_mail.send_with(args=("a@b.c", "hi"), kwargs={"body": "x"}, client=stand_in)
    sample.send_mail.send_with(args=("a@b.c", "hi"), queue="urgent", job_id="j-1", max_attempts=1,
                               timeout=2.5, client=stand_in)
    defaults, overridden = stand_in.calls
    assert (defaults.task, defaults.args, defaults.kwargs) == ("mail.send", ["a@b.c", "hi"], {"body": "x"})
    assert (defaults.queue, defaults.max_attempts, defaults.timeout) == ("emails", 5, 30)
    assert (overridden.queue, overridden.job_id, overridden.max_attempts, overridden.timeout) == (
        "urgent", "j-1", 1, 2.5)


def test_a_call_to_a_manager_or_worker_leaves_the_tasks_queue(sample) -> None:
    stand_in = StandIn()
    sample.send_mail.send_with(args=("a@b.c", "hi"), manager="box", client=stand_in)
    sample.send_mail.send_with(args=("a@b.c", "hi"), worker="box:2", client=stand_in)
    assert [(c.queue, c.manager, c.worker) for c in stand_in.calls] == [(None, "box", None), (None, None, "box:2")]
    with pytest.raises(ConfigError, match="^a call of mail.send goes to a queue or to a manager/worker, not both$"):
        sample.send_mail.send_with(args=("a@b.c", "hi"), queue="emails", manager="box", client=stand_in)
    assert len(stand_in.calls) == 2


@pytest.mark.parametrize("args, kwargs, says", [
    ((1, {2}), {}, "argument 2 of tasks_sample.add is not JSON: set"),
    ((datetime.date(2026, 1, 1), 1), {}, "argument 1 of tasks_sample.add is not JSON: date"),
    ((object(), 1), {}, "argument 1 of tasks_sample.add is not JSON: object"),
    ((1, float("nan")), {}, "argument 2 of tasks_sample.add is not JSON: NaN"),
    ((1, [1.0, {"deep": float("-inf")}]), {}, "argument 2 of tasks_sample.add is not JSON: -Infinity"),
    ((1, {(1, 2): "tuple key"}), {}, "argument 2 of tasks_sample.add is not JSON: a tuple as a dict key"),
    ((1,), {"b": datetime.datetime(2026, 1, 1)}, "keyword argument 'b' of tasks_sample.add is not JSON: datetime"),
])
def test_arguments_that_are_not_json_are_refused_naming_the_argument(
        sample, client: StandIn, args: tuple, kwargs: dict, says: str) -> None:
    with pytest.raises(JobDataError) as info:
        sample.add.delay(*args, **kwargs)
    assert str(info.value) == says
    assert client.calls == []


def test_a_circular_argument_is_refused(sample, client: StandIn) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(JobDataError, match="^argument 1 of tasks_sample.add is not JSON: a circular reference$"):
        sample.add.delay(loop, 1)


def test_tuples_arrive_as_lists(sample, client: StandIn) -> None:
    sample.add.delay((1, 2), [3, (4, (5,))])
    meta = client.calls[0].meta()
    assert meta["qw:args"] == "[[1,2],[3,[4,[5]]]]"
    assert decode_arguments(meta) == ([[1, 2], [3, [4, [5]]]], {})


def test_arguments_that_do_not_fit_the_function_are_refused_at_queue_time(sample, client: StandIn) -> None:
    with pytest.raises(TypeError, match=r"^tasks_sample.add\(a, b\): missing a required argument: 'b'$"):
        sample.add.delay(1)
    with pytest.raises(TypeError, match=r"^tasks_sample.add\(a, b\): got an unexpected keyword argument 'c'$"):
        sample.add.delay(1, 2, c=3)
    assert client.calls == []


def test_map_hands_the_client_one_batch(sample, client: StandIn) -> None:
    handles = sample.add.map([(1, 2), [3, 4], (5, 6)])
    assert handles == [JobHandle("batch-0"), JobHandle("batch-1"), JobHandle("batch-2")]
    assert client.calls == [] and len(client.batches) == 1
    assert [c.meta()["qw:args"] for c in client.batches[0]] == ["[1,2]", "[3,4]", "[5,6]"]
    assert sample.send_mail.map([("a@b.c", "hi")], queue="bulk", max_attempts=2)[0].id == "batch-0"
    assert (client.batches[1][0].queue, client.batches[1][0].max_attempts) == ("bulk", 2)


def test_map_with_one_bad_item_queues_nothing(sample, client: StandIn) -> None:
    with pytest.raises(JobDataError, match="^argument 2 of tasks_sample.add is not JSON: set$"):
        sample.add.map([(1, 2), (3, {4}), (5, 6)])
    with pytest.raises(TypeError, match="^tasks_sample.add.map takes a tuple of arguments per job; item 1 is a int$"):
        sample.add.map([(1, 2), 3])
    assert client.batches == []
    assert sample.add.map([]) == [] and client.batches == []


def test_message_builds_a_call_without_sending_it(sample, client: StandIn) -> None:
    call = sample.send_mail.message("a@b.c", subject="hi")
    assert call == Call("mail.send", ["a@b.c"], {"subject": "hi"}, queue="emails", max_attempts=5, timeout=30)
    assert client.calls == [] and client.batches == []


def test_the_default_client_is_made_once_and_can_be_set(sample, monkeypatch) -> None:
    made: list[StandIn] = []

    def make() -> StandIn:
        made.append(StandIn())
        return made[-1]

    monkeypatch.setattr(qw, "Client", make)
    sample.add.delay(1, 2)
    sample.add.delay(3, 4)
    assert len(made) == 1 and len(made[0].calls) == 2
    other = StandIn()
    tasks.set_default_client(other)
    sample.add.delay(5, 6)
    assert len(other.calls) == 1 and len(made[0].calls) == 2


def test_a_client_that_cannot_queue_tasks_is_named(sample) -> None:
    with pytest.raises(TypeError, match="^'not a client' cannot queue tasks: it has no queue_call\\(\\)$"):
        sample.add.send_with(args=(1, 2), client="not a client")  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, says", [
    ({"task": ""}, "a task name must be a non-empty string, got ''"),
    ({"task": "a b"}, "task name 'a b' must not contain whitespace"),
    ({"task": "pkg.mod:"}, "import path 'pkg.mod:' is not of the form 'module:function'"),
    ({"task": "a:b:c"}, "import path 'a:b:c' is not of the form 'module:function'"),
    ({"task": "t", "queue": "all:jobs"}, "queue name 'all:jobs' may hold only letters, digits, '_', '.' and '-'"),
    ({"task": "t", "manager": "all"}, "manager name 'all' is reserved"),
    ({"task": "t", "job_id": ""}, "job_id must be a non-empty string, got ''"),
    ({"task": "t", "timeout": 0}, "timeout must be positive, got 0"),
])
def test_a_call_checks_its_options(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        Call(**kwargs)
    assert str(info.value) == says


def test_a_call_by_import_path_or_name_needs_no_declared_task() -> None:
    # what client.enqueue("myapp.tasks:add", 4, 5) and client.submit("mail.send", ...) build
    assert Call("myapp.tasks:add", (4, 5)).meta() == {"qw:history": "", "qw:keep": "1", "qw:task": "myapp.tasks:add",
                                                     "qw:args": "[4,5]"}
    assert Call("mail.send", ["a@b.c", "hi"], {}).meta() == {"qw:history": "", "qw:keep": "1", "qw:task": "mail.send",
                                                             "qw:args": '["a@b.c","hi"]'}


def test_handles_compare_by_id() -> None:
    assert JobHandle("a") == JobHandle("a", client=object()) and JobHandle("a") != JobHandle("b")
    assert len({JobHandle("a"), JobHandle("a")}) == 1 and repr(JobHandle("a")) == "JobHandle('a')"


# -- queue names and order ---------------------------------------------------


def test_named_queues_live_under_all_queue() -> None:
    assert Keys().named_queue("emails") == "all:queue:emails"
    assert Keys("{app}:").named_queue("sms.eu-1_b") == "{app}:all:queue:sms.eu-1_b"
    assert Keys("{app}:").named_queue("all") == "{app}:all:jobs"


@pytest.mark.parametrize("name, says", [
    ("", "queue name must not be empty"),
    ("a:b", "queue name 'a:b' may hold only letters, digits, '_', '.' and '-'"),
    ("a b", "queue name 'a b' may hold only letters, digits, '_', '.' and '-'"),
    ("e*", "queue name 'e*' may hold only letters, digits, '_', '.' and '-'"),
    ("é", "queue name 'é' may hold only letters, digits, '_', '.' and '-'"),
    ("q" * 65, "queue name 'qqqqqqqqqqqqqqqqqqqq'... is longer than 64 characters"),
])
def test_queue_names_break_no_rule(name: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        Keys().named_queue(name)
    assert str(info.value) == says
    assert Keys().named_queue("q" * 64) == "all:queue:" + "q" * 64


def test_parse_queues_reads_names_and_weights() -> None:
    assert parse_queues(["emails:3", "sms:1"]) == [("emails", 3), ("sms", 1)]
    assert parse_queues(["emails", "all"]) == [("emails", None), ("all", None)]
    assert parse_queues([]) == []


@pytest.mark.parametrize("specs, says", [
    (["emails:0"], "--queue=emails:0: the weight must be a whole number from 1 to 999999, got '0'"),
    (["emails:1.5"], "--queue=emails:1.5: the weight must be a whole number from 1 to 999999, got '1.5'"),
    (["emails:"], "--queue=emails:: the weight must be a whole number from 1 to 999999, got ''"),
    (["emails:-2"], "--queue=emails:-2: the weight must be a whole number from 1 to 999999, got '-2'"),
    (["bad name:2"], "--queue=bad name:2: queue name 'bad name' may hold only letters, digits, '_', '.' and '-'"),
    ([":3"], "--queue=:3: queue name must not be empty"),
    (["emails", "sms", "emails"], "--queue: 'emails' is given twice"),
    (["emails:3", "sms"], "--queue: give every queue a weight, or none (weighted: emails; not: sms)"),
])
def test_parse_queues_refuses_with_one_line(specs: list[str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_queues(specs)
    assert str(info.value) == says


def test_unweighted_queues_are_tried_in_strict_order() -> None:
    order = QueueOrder(parse_queues(["emails", "sms", "all"]), key=Keys("{app}:").named_queue)
    assert not order.weighted
    picks = {order.pick() for _ in range(200)}
    assert picks == {("{app}:all:queue:emails", "{app}:all:queue:sms", "{app}:all:jobs")}


def first_places(order: QueueOrder, n: int) -> collections.Counter:
    return collections.Counter(order.pick()[0] for _ in range(n))


def test_weighted_queues_come_first_in_proportion_to_their_weight() -> None:
    order = QueueOrder(parse_queues(["emails:3", "sms:1"]), rng=random.Random(7))
    assert order.weighted
    picks = collections.Counter(order.pick() for _ in range(20000))
    assert set(picks) == {("emails", "sms"), ("sms", "emails")}  # never a queue left out
    assert 0.73 < picks[("emails", "sms")] / 20000 < 0.77


def test_weighted_order_after_the_first_follows_the_remaining_weights() -> None:
    order = QueueOrder(parse_queues(["a:5", "b:3", "c:2"]), rng=random.Random(11))
    picks = [order.pick() for _ in range(30000)]
    first = collections.Counter(p[0] for p in picks)
    assert [round(first[q] / 30000, 2) for q in "abc"] == [0.5, 0.3, 0.2]
    after_a = collections.Counter(p[1] for p in picks if p[0] == "a")
    assert 0.57 < after_a["b"] / sum(after_a.values()) < 0.63  # 3 of the remaining 5
    assert all(sorted(p) == ["a", "b", "c"] for p in picks)


def test_many_weighted_queues_are_drawn_per_claim_with_the_same_odds() -> None:
    specs = [f"q{i}:{i + 1}" for i in range(8)]  # more than are listed up front
    order = QueueOrder(parse_queues(specs), rng=random.Random(3))
    first = first_places(order, 36000)
    for i in range(8):
        assert abs(first[f"q{i}"] / 36000 - (i + 1) / 36) < 0.01
    assert sorted(order.pick()) == sorted(f"q{i}" for i in range(8))


def test_one_weighted_queue_is_a_fixed_order() -> None:
    assert QueueOrder([("emails", 4)]).pick() == ("emails",)


# -- resolving on the worker ---------------------------------------------------


def test_a_plain_job_runs_the_function_target() -> None:
    seen = []
    dispatcher = Dispatcher(lambda job_id, data: seen.append((job_id, data)), {})
    resolved = dispatcher.resolve({"qw:enc": "json"})
    assert resolved.plain and resolved.task is None
    resolved.run("j1", {"x": 1})
    assert seen == [("j1", {"x": 1})]


def test_a_plain_job_without_a_function_target_is_refused(sample) -> None:
    dispatcher = Dispatcher(None, load_task_modules(["tasks_sample"]))
    with pytest.raises(Refused) as info:
        dispatcher.resolve({"qw:enc": "json"})
    assert str(info.value) == ("no target for a plain job; this manager runs only tasks: "
                               "mail.send, tasks_sample.Report, tasks_sample.add")
    with pytest.raises(Refused, match=r"^no target for a plain job; this manager runs only tasks: none \(import"):
        Dispatcher(None, {}, allow=["myapp.*"]).resolve({})


def test_a_call_round_trips_to_the_function_with_its_arguments(sample) -> None:
    dispatcher = Dispatcher(None, load_task_modules(["tasks_sample"]))
    resolved = dispatcher.resolve(sample.send_mail.message("a@b.c", "hi", body="yo").meta())
    assert resolved.fn is sample.send_mail.fn and resolved.task is sample.send_mail
    assert (resolved.args, resolved.kwargs) == (["a@b.c", "hi"], {"body": "yo"})
    assert (resolved.max_attempts, resolved.timeout) == (5, 30)
    assert resolved.run("ignored", {}) == {"to": "a@b.c", "subject": "hi", "body": "yo"}
    report = dispatcher.resolve(sample.Report.message("2026-11", pages=4).meta())
    assert report.run("ignored", {}) == {"month": "2026-11", "pages": 4, "runs": 1}


def test_a_plain_producers_task_job_runs() -> None:
    # HSET job:1 qw:task tasks_sample.add qw:args '[4,5]': every value a string, no kwargs field
    dispatcher = Dispatcher(None, load_task_modules(["tasks_sample"]))
    assert dispatcher.resolve({"qw:task": "tasks_sample.add", "qw:args": "[4,5]"}).run("1", {}) == 9
    assert dispatcher.resolve({"qw:task": "tasks_sample.Report", "qw:args": '["m"]'}).run("1", {})["month"] == "m"


def test_an_unknown_task_is_refused_listing_what_this_manager_runs(sample) -> None:
    dispatcher = Dispatcher(print, load_task_modules(["tasks_sample"]))
    with pytest.raises(Refused) as info:
        dispatcher.resolve({"qw:task": "x", "qw:args": "[]"})
    assert str(info.value) == "unknown task 'x'; this manager runs: mail.send, tasks_sample.Report, tasks_sample.add"
    with pytest.raises(Refused, match="^unknown task 'x'; this manager runs no tasks$"):
        Dispatcher(print, {}).resolve({"qw:task": "x"})


def test_a_long_list_of_tasks_is_cut_short(sample) -> None:
    many = {f"t{i:02}": sample.add for i in range(25)}
    with pytest.raises(Refused) as info:
        Dispatcher(None, many).resolve({"qw:task": "nope"})
    assert str(info.value) == ("unknown task 'nope'; this manager runs: "
                               + ", ".join(f"t{i:02}" for i in range(20)) + " and 5 more")


def test_an_import_path_outside_the_allowlist_is_refused_without_importing_it() -> None:
    dispatcher = Dispatcher(None, {}, allow=["myapp.*"])
    with pytest.raises(Refused) as info:
        dispatcher.resolve({"qw:task": "os:remove", "qw:args": '["/etc/passwd"]'})
    assert str(info.value) == "import path 'os:remove' is not allowed (qw-manager --allow)"
    with pytest.raises(Refused, match=r"^import path 'tasks_none:handle' is not allowed \(qw-manager --allow\)$"):
        Dispatcher(None, {}).resolve({"qw:task": "tasks_none:handle"})
    assert "tasks_none" not in sys.modules  # job data made nothing import


def test_an_allowed_import_path_runs(sample) -> None:
    dispatcher = Dispatcher(None, {}, allow=["tasks_sample"])
    plain = dispatcher.resolve({"qw:task": "tasks_sample:plain", "qw:args": "[21]"})
    assert plain.task is None and plain.run("1", {}) == 42
    task = dispatcher.resolve({"qw:task": "tasks_sample:add", "qw:args": "[1,2]"})
    assert task.task is sample.add and task.run("1", {}) == 3
    job = dispatcher.resolve({"qw:task": "tasks_sample:Report", "qw:args": '["m"]', "qw:kwargs": '{"pages":2}'})
    assert job.task is sample.Report.__task__ and job.run("1", {})["pages"] == 2


@pytest.mark.parametrize("path, says", [
    ("nosuch.mod:fn", "import path 'nosuch.mod:fn' cannot be imported: no module named 'nosuch'"),
    ("tasks_sample:CONSTANT", "import path 'tasks_sample:CONSTANT' is not callable"),
    ("tasks_sample:missing", "import path 'tasks_sample:missing': module 'tasks_sample' has no attribute 'missing'"),
    ("tasks_sample:_private", "import path 'tasks_sample:_private' names a private attribute"),
    ("tasks_sample:add.__globals__", "import path 'tasks_sample:add.__globals__' names a private attribute"),
    ("tasks_sample:join", "import path 'tasks_sample:join' names 'join' from module 'posixpath', "
                          "which is not allowed (qw-manager --allow)"),
    ("tasks_sample:qw.Client", "import path 'tasks_sample:qw.Client' names 'Client' from module 'qw.client', "
                               "which is not allowed (qw-manager --allow)"),
    ("tasks sample:add", "import path 'tasks sample:add' is not of the form 'module:function'"),
    ("tasks_sample:", "import path 'tasks_sample:' is not of the form 'module:function'"),
])
def test_an_allowed_import_path_that_does_not_name_a_function_is_refused(path: str, says: str) -> None:
    dispatcher = Dispatcher(None, {}, allow=["tasks_sample", "nosuch.*"])
    with pytest.raises(Refused) as info:
        dispatcher.resolve({"qw:task": path, "qw:args": "[]"})
    assert str(info.value) == says


def test_an_allowed_module_that_fails_to_import_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('no config\\nhere')\n")
    with pytest.raises(Refused, match="^import path 'broken_tasks:f' cannot be imported: RuntimeError: no config here$"):
        Dispatcher(None, {}, allow=["broken_*"]).resolve({"qw:task": "broken_tasks:f"})


@pytest.mark.parametrize("meta, says", [
    ({"qw:args": "[1,"}, "task 'tasks_sample.add': qw:args is not JSON: Expecting value: line 1 column 4 (char 3)"),
    ({"qw:args": '{"a":1}'}, "task 'tasks_sample.add': qw:args must be a JSON array, not an object"),
    ({"qw:args": "7"}, "task 'tasks_sample.add': qw:args must be a JSON array, not a number"),
    ({"qw:args": "[NaN]"}, "task 'tasks_sample.add': qw:args is not JSON: NaN is not JSON"),
    ({"qw:args": "[]", "qw:kwargs": "[1]"}, "task 'tasks_sample.add': qw:kwargs must be a JSON object, not an array"),
    ({"qw:args": "[]", "qw:kwargs": "null"}, "task 'tasks_sample.add': qw:kwargs must be a JSON object, not null"),
])
def test_undecodable_arguments_are_refused(sample, meta: dict[str, str], says: str) -> None:
    dispatcher = Dispatcher(None, load_task_modules(["tasks_sample"]))
    with pytest.raises(Refused) as info:
        dispatcher.resolve({"qw:task": "tasks_sample.add", **meta})
    assert str(info.value) == says


def test_missing_argument_fields_mean_no_arguments() -> None:
    assert decode_arguments({"qw:task": "t"}) == ([], {})


def test_a_task_is_no_function_target(sample) -> None:
    with pytest.raises(ConfigError, match="^target tasks_sample.add is a task: name its module"):
        Dispatcher(sample.add, {})
    with pytest.raises(ConfigError, match="^target tasks_sample.Report is a task"):
        Dispatcher(sample.Report, {})


@pytest.mark.parametrize("patterns, allowed, refused", [
    (["myapp.*"], ["myapp", "myapp.tasks", "myapp.a.b"], ["myappx", "other.myapp", "myapp_x.tasks", "MyApp"]),
    (["myapp.tasks"], ["myapp.tasks"], ["myapp", "myapp.tasks2", "myapp.tasks.sub"]),
    (["a.*", "b.jobs"], ["a", "a.x", "b.jobs"], ["b", "b.x"]),
    (["app.tasks_?"], ["app.tasks_1"], ["app.tasks_12", "app.tasks"]),
    ([], [], ["os", "myapp"]),
])
def test_allow_patterns(patterns: list[str], allowed: list[str], refused: list[str]) -> None:
    allow = AllowList(patterns)
    assert [m for m in allowed + refused if m in allow] == allowed


@pytest.mark.parametrize("pattern, says", [
    ("myapp.tasks:add", "--allow takes module patterns such as 'myapp.*', not import paths: 'myapp.tasks:add'"),
    ("", "--allow takes module patterns such as 'myapp.*', got ''"),
    ("my app", "--allow pattern 'my app' may hold only module names and * ? [ ]"),
])
def test_bad_allow_patterns_are_refused(pattern: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        AllowList([pattern])
    assert str(info.value) == says


def test_how_a_failed_run_ends() -> None:
    abort = outcome(qw.Abort("card declined"))
    assert (abort.error, abort.retry) == ("Abort: card declined", False)
    retry = outcome(qw.Retry(delay=30, reason="rate limited"))
    assert (retry.error, retry.retry, retry.delay) == ("Retry: rate limited", True, 30.0)
    assert outcome(qw.Retry()).retry and outcome(qw.Retry()).delay is None
    refused = outcome(Refused("unknown task 'x'; this manager runs no tasks"))
    assert (refused.error, refused.retry) == ("unknown task 'x'; this manager runs no tasks", False)
    other = outcome(ValueError("bad\nvalue"))
    assert (other.error, other.retry, other.delay) == ("ValueError: bad value", True, None)
    assert outcome(qw.Abort()).error == "Abort" and outcome(KeyError()).error == "KeyError"


def test_abort_and_retry_are_a_tasks_exceptions_not_qws_errors() -> None:
    for signal in (qw.Abort("x"), qw.Retry(reason="x")):
        assert isinstance(signal, Exception) and not isinstance(signal, QwError)
    assert qw.Abort("why").reason == "why" and qw.Retry(delay=1, reason="r").delay == 1.0
    with pytest.raises(ValueError, match="^Retry delay must be a number of seconds >= 0, got -1$"):
        qw.Retry(delay=-1)
    with pytest.raises(ValueError, match="got 'soon'"):
        qw.Retry(delay="soon")  # type: ignore[arg-type]


# -- loading task modules ------------------------------------------------------


def test_load_task_modules_returns_the_tasks_each_declares() -> None:
    loaded = load_task_modules(["tasks_sample", "tasks_pkg", "tasks_sample"])
    assert sorted(loaded) == ["mail.send", "tasks_pkg.mail.notify", "tasks_sample.Report", "tasks_sample.add"]
    assert all(isinstance(t, tasks.Task) for t in loaded.values())
    assert loaded["tasks_pkg.mail.notify"]("you") == "hello you"
    assert sorted(load_task_modules(["tasks_pkg.mail"])) == ["tasks_pkg.mail.notify"]


def test_load_task_modules_after_a_fresh_import_gives_the_fresh_tasks() -> None:
    before = load_task_modules(["tasks_sample"])["tasks_sample.add"]
    del sys.modules["tasks_sample"]  # as a manager's reload does
    after = load_task_modules(["tasks_sample"])["tasks_sample.add"]
    assert after is not before and after is sys.modules["tasks_sample"].add


@pytest.mark.parametrize("names, error, says", [
    (["tasks_none"], ConfigError, "module 'tasks_none' registers no task"),
    (["nosuch_module"], TargetError, "cannot import task module 'nosuch_module': no module named 'nosuch_module'"),
    (["tasks_sample:add"], TargetError,
     "a task module is named by its dotted name, such as 'myapp.tasks'; got 'tasks_sample:add'"),
])
def test_load_task_modules_refuses_with_one_line(names: list[str], error: type, says: str) -> None:
    with pytest.raises(error) as info:
        load_task_modules(names)
    assert str(info.value) == says


def test_a_task_module_that_fails_to_import_says_why_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "failing_tasks.py").write_text("import qw\nraise KeyError('DATABASE_URL')\n")
    with pytest.raises(TargetError) as info:
        load_task_modules(["failing_tasks"])
    assert str(info.value) == "cannot import task module 'failing_tasks': KeyError: 'DATABASE_URL'"


def test_a_duplicate_name_on_import_keeps_its_own_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "dup_tasks.py").write_text("import qw\n\n@qw.task(name='mail.send')\ndef mine():\n    pass\n")
    load_task_modules(["tasks_sample"])
    with pytest.raises(ConfigError) as info:
        load_task_modules(["dup_tasks"])
    assert str(info.value).startswith("task name 'mail.send' is registered twice: at ")
    assert f"{tmp_path / 'dup_tasks.py'}:3 (dup_tasks.mine)" in str(info.value)


@pytest.mark.parametrize("spec, kind", [
    ("targets:record", FUNCTION),      # today's spellings of a function target
    ("targets.record", FUNCTION),
    ("tasks_none.handle", FUNCTION),
    ("tasks_none:handle", FUNCTION),
    ("qw.examples.greet", FUNCTION),
    ("nosuch.mod.fn", FUNCTION),       # left to target.resolve, which says what is missing
    ("tasks_sample", MODULE),
    ("tasks_pkg", MODULE),
    ("tasks_pkg.mail", MODULE),
    ("qw.examples", MODULE),
])
def test_classify_tells_a_function_target_from_a_task_module(spec: str, kind: str) -> None:
    assert classify(spec) == kind


def test_classify_imports_nothing() -> None:
    assert [classify(s) for s in ("tasks_none.handle", "tasks_pkg.mail", "tasks_sample")] == [
        FUNCTION, MODULE, MODULE]
    assert not {"tasks_none", "tasks_pkg", "tasks_pkg.mail", "tasks_sample"} & set(sys.modules)
    assert classify(print) == FUNCTION
    with pytest.raises(TargetError):
        classify("  ")


def test_is_module_walks_packages_and_stops_at_plain_modules() -> None:
    assert is_module("json.decoder") and is_module("tasks_pkg.mail")
    assert not is_module("json.decoder.JSONDecoder") and not is_module("tasks_pkg.nope")
    assert not is_module("a..b") and not is_module("tasks_sample.add")


def test_a_call_meta_is_what_a_worker_reads(sample) -> None:
    # the two sides agree on the wire: json the client writes, the dispatcher reads
    meta = sample.add.message(2, b=3).meta()
    assert json.loads(meta["qw:args"]) == [2] and json.loads(meta["qw:kwargs"]) == {"b": 3}
    assert Dispatcher(None, {"tasks_sample.add": sample.add}).resolve(meta) == Resolved(
        sample.add.fn, [2], {"b": 3}, sample.add)
