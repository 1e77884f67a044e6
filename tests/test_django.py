"""The Django integration on a real project (tests/djproject: two apps, a model, a view, file-based SQLite),
the suite's private Redis and real ``manage.py qw_manager`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

django = pytest.importorskip("django")  # the `django` extra; the `test` extra installs it, so CI runs these

from qw import Client, JobHandle, JobNotFound, hooks  # noqa: E402
from qw import defaults as qw_defaults  # noqa: E402

from conftest import RedisServer, cli_env, wait_for  # noqa: E402

MANAGE = Path(__file__).parent / "djproject" / "manage.py"


@pytest.fixture(scope="module")
def project(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Django set up in this process on the test project; the environment its subprocesses get."""
    env = {"QW_TEST_REDIS_URL": redis_server.url, "QW_TEST_DB": str(tmp_path_factory.mktemp("db") / "db.sqlite3"),
           "DJANGO_SETTINGS_MODULE": "djproject.settings"}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_hooks = {kind: list(fns) for kind, fns in hooks._hooks.items()}
    saved_client = qw_defaults.peek_default_client()
    os.environ.update(env)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    yield env
    # Leave the rest of the suite as it was: no Django hooks, no project client.
    hooks._hooks.update(saved_hooks)
    qw_defaults.set_default_client(saved_client)
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def project_client(project: dict[str, str], client: Client) -> Iterator[Any]:
    """The project's default client (from settings.QW), on a flushed Redis."""
    from qw.contrib.django.client import ProjectClient
    from qw.contrib.django.settings import project_settings

    chosen = ProjectClient(project_settings())
    qw_defaults.set_default_client(chosen)
    yield chosen
    chosen.close()


def manage(project: dict[str, str], *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MANAGE), *args], capture_output=True, text=True, timeout=60,
                          env=cli_env(**{**project, **env}))


@pytest.fixture
def qw_manager(project: dict[str, str], spawn: Callable[..., subprocess.Popen],
               client: Client) -> Callable[..., subprocess.Popen]:
    """Start ``manage.py qw_manager -n <name> ...`` and wait until its workers are registered."""
    def start(name: str, *args: str, workers: int = 1, **env: str) -> subprocess.Popen:
        proc = spawn([sys.executable, str(MANAGE), "qw_manager", "-n", name, f"--workers={workers}", *args],
                     env=cli_env(**{**project, **env}), stderr=subprocess.PIPE, text=True)
        wait_for(lambda: proc.poll() is not None or (client.get_manager_info(name)
                                                     and len(client.get_manager_workers(name)) == workers),
                 timeout=30, what=f"manager {name} and its workers")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return proc
    return start


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


# -- queuing from a view, run by a real manager --------------------------------------


def test_a_view_queues_on_commit_and_a_manage_py_qw_manager_runs_it(project: dict[str, str], client: Client,
                                                                    project_client: Any, qw_manager: Callable,
                                                                    tmp_path: Path) -> None:
    from django.test import Client as Browser
    from djproject.shop.models import Order

    log = tmp_path / "hooks.txt"
    # The manager process opens a database connection before its workers fork (QW_TEST_TOUCH_DB).
    proc = qw_manager("web", workers=2, QW_TEST_TOUCH_DB="1", QW_TEST_HOOKS=str(log))
    workers = {int(w["pid"]) for w in client.get_manager_health("web").values()}
    response = Browser().get("/order/book/")
    assert response.status_code == 200
    job_id = response.content.decode()
    order_id = JobHandle(job_id, client).result(timeout=20)
    order = Order.objects.get(pk=order_id)
    assert order.item == "book" and order.shipped_by in workers and order.shipped_by != os.getpid()
    stop(proc)
    lines = log.read_text().split("\n")
    assert lines.count("inherited False") == 2 and "inherited True" not in lines  # dropped in the child
    assert {line for line in lines if line.startswith("start ")} == {f"start {pid}" for pid in workers}
    assert {line for line in lines if line.startswith("stop ")} == {f"stop {pid}" for pid in workers}


def test_each_job_begins_without_the_connection_the_last_one_opened(project: dict[str, str], client: Client,
                                                                    project_client: Any, qw_manager: Callable) -> None:
    from djproject.shop.tasks import fresh

    proc = qw_manager("fresh", workers=1)
    assert [fresh.call(timeout=20) for _ in range(3)] == [True, True, True]
    stop(proc)


def test_a_rolled_back_view_queues_nothing(project: dict[str, str], client: Client, project_client: Any) -> None:
    from django.test import Client as Browser
    from djproject.shop.models import Order

    before = Order.objects.count()
    job_id = Browser().get("/order/ghost/?fail=1").content.decode()
    assert Order.objects.count() == before
    assert client.get_all_queued_jobs() == []
    with pytest.raises(JobNotFound):
        assert JobHandle(job_id, client).state


def test_inside_atomic_a_delay_is_queued_once_at_commit_and_delay_now_at_once(project: dict[str, str],
                                                                                client: Client,
                                                                                project_client: Any) -> None:
    from django.db import transaction
    from djproject.shop.tasks import count

    with transaction.atomic():
        later = count.delay()
        with transaction.atomic():  # a savepoint: still waits for the outermost commit
            inner = count.delay()
        now = count.delay_now()
        assert client.get_all_queued_jobs() == [now.id]
    assert sorted(client.get_all_queued_jobs()) == sorted([now.id, later.id, inner.id])
    assert later.state == "queued"
    outside = count.delay()  # autocommit: at once
    assert outside.id in client.get_all_queued_jobs()
    with transaction.atomic():
        handles = count.map([(), ()])
        assert len(client.get_all_queued_jobs()) == 4
    assert set(client.get_all_queued_jobs()) >= {h.id for h in handles}
    with transaction.atomic():
        count.delay()
        transaction.set_rollback(True)
    assert len(client.get_all_queued_jobs()) == 6


# -- the commands ------------------------------------------------------------------


def test_qw_info_prints_the_server_the_tasks_and_the_workers(project: dict[str, str], client: Client,
                                                             qw_manager: Callable, redis_server: RedisServer) -> None:
    proc = qw_manager("info", workers=1)
    done = manage(project, "qw_info")
    assert done.returncode == 0, done.stderr
    server, tasks, workers = done.stdout.strip().split("\n\n")
    assert server.split("\n")[0].split() == ["ADDRESS", "VERSION", "PING"]
    assert f"127.0.0.1:{redis_server.port}" in server
    names = [line.split()[0] for line in tasks.split("\n")[1:]]
    assert names == ["mail.welcome", "shop.broken", "shop.count", "shop.flaky", "shop.fresh", "shop.ship"]
    assert all(line.split()[1:] == ["1", "0", "0"] for line in tasks.split("\n")[1:])
    assert workers.split("\n")[0].split()[:4] == ["HOST", "MANAGER", "WORKER", "PID"]
    assert "info:1" in workers
    filtered = manage(project, "qw_info", "mail").stdout
    assert "mail.welcome" in filtered and "shop.ship" not in filtered.split("\n\n")[1]
    stop(proc)


def test_a_and_q_choose_the_apps_and_queues_a_manager_runs(project: dict[str, str], client: Client,
                                                           project_client: Any, qw_manager: Callable) -> None:
    from djproject.mail.qw_workers.welcome import welcome
    from djproject.shop.tasks import count

    proc = qw_manager("mailer", "-a", "mail", "-q", "emails")
    info = client.get_manager_info("mailer")
    assert info["tasks"] == ["mail.welcome"]
    assert welcome.delay("ann").result(timeout=20) == "welcome, ann"
    assert count.delay().state == "queued"  # shop's tasks, on the shared queue: not this manager's
    stop(proc)
    proc = qw_manager("emails", "-q", "emails")  # every app: only the modules with a task on that queue
    assert client.get_manager_info("emails")["tasks"] == ["mail.welcome"]
    stop(proc)


def test_a_manager_with_no_q_serves_every_queue_of_its_tasks(project: dict[str, str], client: Client,
                                                              project_client: Any, qw_manager: Callable) -> None:
    from djproject.mail.qw_workers.welcome import welcome
    from djproject.shop.tasks import count

    proc = qw_manager("every")
    assert welcome.delay("bo").result(timeout=20) == "welcome, bo"
    assert count.call(timeout=20) >= 0
    stop(proc)


def test_qw_runs_qw_client_commands_on_the_projects_redis(project: dict[str, str], client: Client,
                                                          redis_server: RedisServer) -> None:
    done = manage(project, "qw", "ping")
    assert done.returncode == 0 and f"127.0.0.1:{redis_server.port}" in done.stdout
    queued = manage(project, "qw", "queue", "task", "shop.count")
    assert queued.returncode == 0, queued.stderr
    assert client.get_all_queued_jobs() == [queued.stdout.strip()]


@pytest.mark.parametrize("args, env, message", [
    (["qw_manager", "-a", "nope"], {}, "qw_manager: error: unknown app 'nope'"),
    (["qw_manager", "-q", "nope"], {}, "qw_manager: error: unknown queue 'nope'"),
    (["qw_info", "a", "b"], {}, "qw_info: error: usage: manage.py qw_info [<filter>]"),
    (["qw_info"], {"QW_TEST_BAD_SETTING": "1"}, "qw_info: error: settings.QW['COMMIT_MODE'] must be one of"),
    (["qw", "ping"], {"QW_TEST_BAD_SETTING": "1"}, "qw: error: settings.QW['COMMIT_MODE']"),
    (["qw_manager"], {"QW_TEST_BROKEN_APP": "1"},
     "qw_manager: error: app 'broken': cannot import djproject.broken.tasks: NameError:"),
])
def test_bad_input_is_one_line_and_exit_1(project: dict[str, str], args: list[str], env: dict[str, str],
                                          message: str) -> None:
    done = manage(project, *args, **env)
    assert done.returncode == 1
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_the_check_framework_reports_the_setting_and_the_import(project: dict[str, str]) -> None:
    bad = manage(project, "check", QW_TEST_BAD_SETTING="1")
    assert bad.returncode == 1 and "(qw.E001) settings.QW['COMMIT_MODE']" in bad.stderr
    broken = manage(project, "check", QW_TEST_BROKEN_APP="1")
    assert broken.returncode == 1 and "(qw.E002) app 'broken': cannot import djproject.broken.tasks" in broken.stderr
    assert manage(project, "check").returncode == 0


def test_autodiscovery_imports_only_task_modules(project: dict[str, str]) -> None:
    from qw.contrib.django.state import state

    assert state.modules == {"contenttypes": [], "auth": [], "shop": ["djproject.shop.tasks"],
                             "mail": ["djproject.mail.qw_workers", "djproject.mail.qw_workers.welcome"],
                             "qw": []}
    assert "djproject.shop.helpers" not in sys.modules  # it raises if imported


# -- immediate mode ------------------------------------------------------------------


def test_qw_immediate_runs_tasks_inline_without_redis(project: dict[str, str]) -> None:
    script = ("from djproject.shop.models import Order\n"
              "from djproject.shop.tasks import ship\n"
              "o = Order.objects.create(item='pen')\n"
              "h = ship.delay(o.pk)\n"
              "print(type(h).__name__, h.state, h.result() == o.pk, Order.objects.get(pk=o.pk).shipped_by)\n"
              "import os; print(os.getpid())\n")
    # A Redis nobody listens on: immediate mode must not need one.
    done = manage(project, "shell", "-c", script, QW_TEST_IMMEDIATE="1", QW_TEST_REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 0, done.stderr
    first, pid = done.stdout.strip().split("\n")[-2:]
    assert first == f"ImmediateHandle done True {pid}"


# -- the deployment recipe -------------------------------------------------------------


def test_the_supervisord_recipe_runs_a_qw_manager_command_that_qw_accepts(project: dict[str, str]) -> None:
    import configparser
    import shlex

    from test_deploy import MARGIN, manager_args

    from qw.contrib.django.management.commands.qw_manager import manager_argv
    from qw.contrib.django.settings import project_settings

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string((Path(__file__).parent.parent / "scripts" / "deploy" / "supervisord-django.conf").read_text())
    program = parser["program:qw-django-web1"]
    argv = shlex.split(program["command"])
    assert argv[1:3] == ["manage.py", "qw_manager"]
    options = manager_args(manager_argv(argv[3:], project_settings()))
    assert options["name"] == "web1" and list(options["tasks"]) == ["djproject.shop.tasks"]  # -a shop: that app only
    assert program["stopsignal"] == "TERM" and program.getint("stopwaitsecs") >= options["graceful_timeout"] + MARGIN
    assert "DJANGO_SETTINGS_MODULE" in program["environment"]
    guide = (Path(__file__).parent.parent / "docs" / "deploy.md").read_text().split("\n## A Django project\n")[1]
    quoted = guide.split("```ini\n")[1].split("```")[0].splitlines()
    recipe = {line.strip() for line in
              (Path(__file__).parent.parent / "scripts" / "deploy" / "supervisord-django.conf").read_text().splitlines()}
    assert [line for line in quoted if line.strip() not in recipe] == []  # the guide quotes it as it is


# -- the settings, and the README that documents them ------------------------------------------


@pytest.mark.parametrize("value, message", [
    ([], "settings.QW must be a dict, got list"),
    ({"URLS": "redis://x"}, "settings.QW: unknown key 'URLS'; known: URL, NAMESPACE"),
    ({"URL": "localhost:6379"}, "settings.QW['URL'] must be a Redis URL"),
    ({"NAMESPACE": 3}, "settings.QW['NAMESPACE'] must be a string"),
    ({"IMMEDIATE": "yes"}, "settings.QW['IMMEDIATE'] must be True or False"),
    ({"TASK_MODULES": "tasks"}, "settings.QW['TASK_MODULES'] must be a list of module names"),
    ({"TASK_MODULES": ["my-tasks"]}, "settings.QW['TASK_MODULES'] must be a list of module names"),
])
def test_a_bad_setting_is_one_line_naming_the_key(value: Any, message: str) -> None:
    from qw.contrib.django.settings import read
    from qw.exceptions import ConfigError

    with pytest.raises(ConfigError) as caught:
        read(value)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_settings_default_and_the_readme_names_every_key_and_command() -> None:
    from qw.contrib.django.settings import KEYS, QwSettings, read

    assert read(None) == read({}) == QwSettings(None, "", "on_commit", False, ("tasks", "qw_workers"))
    readme = (Path(__file__).parent.parent / "README.md").read_text().split("\n## Django\n")[1].split("\n## ")[0]
    assert all(f'"{key}"' in readme for key in KEYS)
    for usage in ("manage.py qw_manager [-a <app>]... [-n <name>] [-q <queue>]... [any qw-manager option]",
                  "manage.py qw_info [<filter>]", "manage.py qw <any qw-client command>"):
        assert usage in readme
    assert "pip install 'qw[django]'" in readme


def test_override_settings_can_turn_immediate_mode_on_for_a_test(project: dict[str, str], client: Client,
                                                                 project_client: Any) -> None:
    from django.conf import settings
    from django.test import override_settings
    from djproject.shop.tasks import count

    from qw.testing import ImmediateHandle

    with override_settings(QW={**settings.QW, "IMMEDIATE": True}):
        handle = count.delay()
        assert isinstance(handle, ImmediateHandle) and handle.state == "done"
    assert client.get_all_queued_jobs() == []
    assert count.delay().state == "queued"  # the project's client again


def test_qw_manager_help_shows_its_own_usage_then_qw_managers(project: dict[str, str]) -> None:
    done = manage(project, "qw_manager", "-h")
    assert done.returncode == 0
    assert done.stdout.startswith("``manage.py qw_manager [-a <app>]... [-n <name>] [-q <queue>]...")
    assert "qw-manager's options:" in done.stdout and "--graceful-timeout" in done.stdout
