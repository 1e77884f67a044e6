"""The deployment recipes in scripts/deploy, kept honest without systemd, supervisord or Kubernetes.

Each recipe's qw-manager command line goes through qw's own option parsing,
its stop timeout must outlast the graceful timeout it gives the manager, its
liveness probe must name the manager it watches, and docs/deploy.md must
quote the files as they are. Then each command line is run for real against
the suite's Redis, pinged, reloaded and stopped as its supervisor would.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from qw import Client, __version__
from qw.cli import client as client_cli
from qw.cli import manager as manager_cli
from qw.cli.common import connection_kwargs, parse
from qw.cli.manager import manager_options, merged, read_config
from qw.keys import validate_manager_name

from conftest import RedisServer, cli_env, wait_for

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "scripts" / "deploy"
GUIDE = ROOT / "docs" / "deploy.md"
UNIT = DEPLOY / "qw-manager@.service"
CONFIG = DEPLOY / "web1.toml"
SUPERVISORD = DEPLOY / "supervisord.conf"
KUBERNETES = DEPLOY / "kubernetes.yaml"
PROCFILE = DEPLOY / "Procfile"
BIN = Path(sys.executable).parent  # where the suite's qw-manager and qw-client are installed

# After --graceful-timeout the manager still kills the busy workers, requeues
# their jobs, writes its statistics and releases its name: a stop timeout must
# leave at least this much over it.
MARGIN = 5
HEROKU_STOP_SECONDS = 30  # Heroku sends SIGKILL this long after TERM; not configurable
POD_NAME = "qw-fetch-7d4b9c6f5-x2kqp"  # as the downward API gives it


# -- reading the recipes -------------------------------------------------------


def manager_args(argv: list[str]) -> dict[str, Any]:
    """qw-manager's options from ``argv`` (program name excluded), merged with --config, validated."""
    try:
        given = parse(manager_cli.__doc__, argv, f"qw-manager {__version__}")
    except SystemExit as exc:  # docopt's way of saying the command line does not match the usage
        pytest.fail(f"qw-manager rejects {argv}: {exc}")
    options = manager_options(merged(given))
    validate_manager_name(options["name"])  # Manager() would; an empty name would become the host name
    return options


def client_args(argv: list[str]) -> dict[str, Any]:
    """qw-client's docopt dict for ``argv`` (program name excluded)."""
    try:
        return parse(client_cli.__doc__, argv, f"qw-client {__version__}")
    except SystemExit as exc:
        pytest.fail(f"qw-client rejects {argv}: {exc}")


def seconds(span: str) -> float:
    """A systemd time span such as ``35``, ``35s`` or ``1min 5s``."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", span)
    assert parts and "".join(n + u for n, u in parts) == span.replace(" ", ""), span
    return sum(int(n) * units[u] for n, u in parts)


def unit() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def systemd_argv(instance: str = "web1") -> list[str]:
    """ExecStart for ``qw-manager@<instance>``, its /etc/qw/<instance>.toml read from scripts/deploy."""
    argv = shlex.split(unit()["ExecStart"].replace("%i", instance))
    return [arg.replace(f"/etc/qw/{instance}.toml", str(CONFIG)) for arg in argv]


def supervisord_programs() -> dict[str, configparser.SectionProxy]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(SUPERVISORD.read_text())
    return {name: parser[name] for name in parser.sections() if name.startswith("program:")}


def kubernetes_lists(key: str, text: str) -> list[list[str]]:
    """Every ``key: [...]`` flow sequence in ``text``; the recipe writes them JSON-compatible."""
    return [json.loads(found) for found in re.findall(rf"^\s*{key}: (\[.*\])\s*$", text, re.MULTILINE)]


def kubernetes_parts() -> tuple[str, str]:
    """The manifest before the liveness probe (container, env) and from it on."""
    text = KUBERNETES.read_text()
    assert text.count("livenessProbe:") == 1
    before, after = text.split("livenessProbe:")
    return before, after


def kubernetes_value(key: str, text: Optional[str] = None) -> str:
    found = re.findall(rf"^\s*{key}: *(\S.*?)\s*$", text if text is not None else KUBERNETES.read_text(),
                       re.MULTILINE)
    assert len(found) == 1, f"{key}: {found}"
    return found[0].strip('"')


def kubernetes_expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container's command: unknown references stay as they are."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def kubernetes_argv() -> list[str]:
    [command] = kubernetes_lists("command", kubernetes_parts()[0])
    return [kubernetes_expand(arg, {"POD_NAME": POD_NAME}) for arg in command]


def probe_command() -> list[str]:
    [command] = kubernetes_lists("command", kubernetes_parts()[1])
    return command


def procfile_command() -> str:
    lines = [line for line in PROCFILE.read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("worker: "), lines
    return lines[0][len("worker: "):]


@pytest.fixture
def stubs(tmp_path: Path) -> Callable[[str, dict[str, str]], list[str]]:
    """Run a shell command line as the platform would, with qw-manager and qw-client replaced by
    stubs that print their arguments: what the shell really passes, quoting and expansions done."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    for prog in ("qw-manager", "qw-client"):
        stub = bin_dir / prog
        stub.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv))\n")
        stub.chmod(0o755)

    def run(command: str, env: dict[str, str]) -> list[str]:
        path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30,
                                env={"PATH": path, **env})
        assert result.returncode == 0 and result.stderr == "", result
        argv = json.loads(result.stdout)
        return [Path(argv[0]).name, *argv[1:]]

    return run


# -- systemd -------------------------------------------------------------------------


def test_systemd_command_line_is_one_qw_accepts() -> None:
    service = unit()
    assert service["ExecStart"].split()[1:] == ["--config=/etc/qw/%i.toml", "--name=%i"]
    argv = systemd_argv("web1")
    assert Path(argv[0]).name == "qw-manager"
    options = manager_args(argv[1:])
    assert options["name"] == "web1"  # the instance name is the manager's name
    assert options["target"] == "myjobs:fetch"
    assert options["url"] is None  # Redis from QW_REDIS_URL, in the EnvironmentFile
    assert service["EnvironmentFile"] == "-/etc/qw/%i.env"
    assert manager_args(systemd_argv("web-2.eu")[1:])["name"] == "web-2.eu"


def test_systemd_stops_with_term_after_the_graceful_timeout() -> None:
    service = unit()
    options = manager_args(systemd_argv()[1:])
    assert service.get("KillSignal", "SIGTERM") in ("SIGTERM", "TERM")
    # TERM to the manager only, which stops its own workers; SIGKILL to whatever is left.
    assert service["KillMode"] == "mixed"
    assert seconds(service["TimeoutStopSec"]) >= options["graceful_timeout"] + MARGIN
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # the manager reloads; workers ignore HUP
    assert "# ExecReload=/bin/kill -USR2 $MAINPID" in UNIT.read_text()
    # Exit 0 is a deliberate stop; a restart must wait out the lease of a manager killed outright.
    assert service["Restart"] == "on-failure"
    assert seconds(service["RestartSec"]) > options["lease"]
    assert service.get("Type", "simple") in ("simple", "exec")  # no sd_notify: not notify or forking


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_finds_nothing_to_ignore(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("/srv/myapp/venv/bin/qw-manager", str(BIN / "qw-manager"))
    instance = tmp_path / "qw-manager@web1.service"
    instance.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True,
                            timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if instance.name in line]
    assert ours == [], ours


def test_the_configuration_file_reads_and_leaves_name_and_url_to_the_unit() -> None:
    config = read_config(str(CONFIG))
    assert config["<target>"] == "myjobs:fetch"
    assert "--name" not in config  # the unit's --name=%i
    assert "--url" not in config  # it would win over QW_REDIS_URL, and put the password in the file
    assert float(config["--graceful-timeout"]) + MARGIN <= seconds(unit()["TimeoutStopSec"])


# -- supervisord ---------------------------------------------------------------------


def test_supervisord_program_runs_a_command_qw_accepts() -> None:
    [(section, program)] = supervisord_programs().items()
    argv = shlex.split(program["command"])
    assert Path(argv[0]).name == "qw-manager"
    options = manager_args(argv[1:])
    assert section == f"program:qw-{options['name']}" == "program:qw-web1"
    assert options["target"] == "myjobs:fetch" and options["url"] is None
    assert program["directory"] in program["environment"]  # the app's checkout is importable


def test_supervisord_stops_with_term_after_the_graceful_timeout() -> None:
    [program] = supervisord_programs().values()
    options = manager_args(shlex.split(program["command"])[1:])
    assert program["stopsignal"] in ("TERM", "SIGTERM")
    assert program.getint("stopwaitsecs") >= options["graceful_timeout"] + MARGIN
    assert program.getboolean("stopasgroup") is False  # TERM to the manager only...
    assert program.getboolean("killasgroup") is True  # ...SIGKILL to its workers too
    assert program["autorestart"] == "unexpected" and program["exitcodes"] == "0"
    # supervisord waits 1 s, 2 s, ... before each retry, then gives up: together longer than the lease.
    assert sum(range(1, program.getint("startretries") + 1)) > options["lease"]


# -- Kubernetes ----------------------------------------------------------------------


def test_kubernetes_manager_is_named_after_its_pod() -> None:
    container, _ = kubernetes_parts()
    argv = kubernetes_argv()
    assert argv[0] == "qw-manager"
    options = manager_args(argv[1:])
    assert options["name"] == POD_NAME
    assert options["target"] == "myjobs:fetch"
    assert re.search(r"- name: POD_NAME\s+valueFrom:\s+fieldRef:\s+fieldPath: metadata\.name\n", container)
    assert kubernetes_value("image") == "example/myapp:1.0"
    assert kubernetes_value("kind") == "Deployment"


def test_kubernetes_redis_url_comes_from_a_secret() -> None:
    container, _ = kubernetes_parts()
    assert re.search(r"- name: QW_REDIS_URL\s+valueFrom:\s+secretKeyRef:\s+name: \S+\s+key: \S+\n", container)
    options = manager_args(kubernetes_argv()[1:])
    assert options["url"] is None and options["host"] == "localhost"  # nothing beats QW_REDIS_URL
    manifest = [line for line in KUBERNETES.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not any("redis://" in line or "rediss://" in line for line in manifest)


def test_kubernetes_grace_period_outlasts_the_graceful_timeout() -> None:
    options = manager_args(kubernetes_argv()[1:])
    assert int(kubernetes_value("terminationGracePeriodSeconds")) >= options["graceful_timeout"] + MARGIN
    assert options["num_workers"] is not None  # the default, the CPU count, would be the node's
    if options["metrics_port"] is not None:
        assert options["metrics_host"] == "0.0.0.0"  # a scraper in another pod must reach it
        assert int(kubernetes_value("containerPort")) == options["metrics_port"]


def test_kubernetes_liveness_probe_pings_the_manager_by_its_name(stubs) -> None:
    command = probe_command()
    # Kubernetes expands $(VAR) in a probe only for variables with a literal value, never for
    # the downward API's: $(POD_NAME) would reach qw-client as it is, and the probe would always fail.
    assert not any("$(" in arg for arg in command)
    assert command[:2] == ["sh", "-c"] and len(command) == 3
    argv = stubs(command[2], {"POD_NAME": POD_NAME, "QW_REDIS_URL": "redis://redis.internal:6379/0"})
    assert argv[0] == "qw-client"
    args = client_args(argv[1:])
    manager = manager_args(kubernetes_argv()[1:])
    assert args["ping"] and args["<manager>"] == manager["name"] == POD_NAME
    # The same Redis and namespace as the manager it watches.
    probe_connection = connection_kwargs(args)
    assert probe_connection == {key: manager[key] for key in probe_connection}
    _, probe = kubernetes_parts()
    assert int(kubernetes_value("timeoutSeconds", probe)) > 1  # room for Python to start
    assert "readinessProbe" not in KUBERNETES.read_text()  # managers serve no traffic


# -- Procfile ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("hostname") is None, reason="no hostname command")
def test_procfile_names_each_process_uniquely(stubs) -> None:
    command = procfile_command()
    # Else a shell stays between the platform and the manager, and dies at the first TERM.
    assert command.startswith("exec qw-manager ")
    names = {}
    # honcho and foreman give each process its own PORT; Heroku sets none for a worker dyno.
    for port in ("5000", "5001", None):
        env = {"PORT": port} if port else {}
        argv = stubs(command, env)
        assert argv[0] == "qw-manager"
        options = manager_args(argv[1:])
        assert options["target"] == "myjobs:fetch"
        assert options["graceful_timeout"] + MARGIN <= HEROKU_STOP_SECONDS
        names[port] = options["name"]
    assert len(set(names.values())) == 3, names
    assert "DYNO" not in command  # not unique during a deploy or a restart


# -- the guide -----------------------------------------------------------------------


def guide_blocks() -> dict[str, list[tuple[str, str]]]:
    """The fenced code blocks of each section of docs/deploy.md, as (language, text)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    for section in re.split(r"^## ", GUIDE.read_text(), flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0]
        sections[title] = re.findall(r"^```(\w*)\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    return sections


@pytest.mark.parametrize("section, recipe", [("systemd", UNIT), ("supervisord", SUPERVISORD),
                                             ("Kubernetes", KUBERNETES), ("Procfile", PROCFILE)])
def test_the_guide_quotes_each_recipe_as_it_is(section: str, recipe: Path) -> None:
    [blocks] = [blocks for title, blocks in guide_blocks().items() if title.startswith(section)]
    assert f"scripts/deploy/{recipe.name}" in GUIDE.read_text()
    recipe_lines = {line.strip() for line in recipe.read_text().splitlines()}
    quoted = [line.strip() for language, text in blocks if language in ("ini", "yaml", "")
              for line in text.splitlines()]
    # Lines abridged in the guide ("...", flow mappings) are left out of the comparison.
    quoted = [line for line in quoted if line and "..." not in line and ": {" not in line]
    assert quoted, f"no quoted lines in section {section}"
    assert [line for line in quoted if line not in recipe_lines] == []


def test_the_guide_gives_the_timeouts_the_recipes_use() -> None:
    text = GUIDE.read_text()
    assert f"TimeoutStopSec={unit()['TimeoutStopSec']}" in text
    assert f"stopwaitsecs={next(iter(supervisord_programs().values()))['stopwaitsecs']}" in text
    assert f"terminationGracePeriodSeconds: {kubernetes_value('terminationGracePeriodSeconds')}" in text
    assert "qw-client ping" in text and "KillMode=mixed" in text


# -- for real ------------------------------------------------------------------------


def app_dir(tmp_path: Path) -> Path:
    """The recipes' application: a module myjobs with a target fetch."""
    app = tmp_path / "myapp"
    app.mkdir()
    (app / "myjobs.py").write_text("def fetch(job_id, job_data):\n    pass\n")
    return app


def local(argv: list[str]) -> list[str]:
    """``argv`` run from the suite's virtualenv, with the metrics on any free port."""
    argv = [str(BIN / Path(argv[0]).name), *argv[1:]]
    argv = ["--metrics-port=0" if arg.startswith("--metrics-port=") else arg for arg in argv]
    if "--metrics-port=0" not in argv:
        argv.append("--metrics-port=0")  # over the configuration file's
    return argv


class Running:
    """One qw-manager started from a recipe, its stderr in a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, group: bool = False) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(command, env=env, stderr=stderr, start_new_session=True)
        self.group = group

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, timeout: float) -> float:
        """TERM, to the manager or (as Heroku, honcho and foreman do) its whole group; seconds taken."""
        started = time.monotonic()
        if self.group:
            os.killpg(self.proc.pid, signal.SIGTERM)
        else:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout) == 0, self.text()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def running() -> Any:
    started: list[Running] = []

    def start(*args: Any, **kwargs: Any) -> Running:
        started.append(Running(*args, **kwargs))
        return started[-1]

    yield start
    for each in started:
        each.kill()


def ping(name: str, env: dict[str, str]) -> int:
    return subprocess.run([str(BIN / "qw-client"), "ping", name], env=env, capture_output=True,
                          timeout=30).returncode


def test_systemd_recipe_runs_reloads_and_stops(client: Client, redis_server: RedisServer, running,
                                               tmp_path: Path) -> None:
    env = cli_env(PYTHONPATH=str(app_dir(tmp_path)), QW_REDIS_URL=redis_server.url)
    service = unit()
    manager = running(local(systemd_argv("web1")), env, tmp_path / "web1.log")
    wait_for(lambda: ping("web1", env) == 0, timeout=20, what="web1 to answer ping")
    wait_for(lambda: len(client.get_manager_workers("web1")) == 8, timeout=20,
             what="the 8 workers of web1.toml")
    reload = shlex.split(service["ExecReload"].replace("$MAINPID", str(manager.proc.pid)))
    subprocess.run(reload, check=True, timeout=10)
    wait_for(lambda: "reloaded: 8 worker(s)" in manager.text(), timeout=20, what="the reload")
    started = client.get_manager_info("web1")["started"]
    manager.proc.send_signal(signal.SIGUSR2)  # systemctl kill -s USR2: executed again, same pid
    wait_for(lambda: client.get_manager_info("web1").get("started") not in (None, started), timeout=30,
             what="web1 executed again")
    assert manager.proc.poll() is None and client.get_manager_info("web1")["pid"] == manager.proc.pid
    assert manager.stop(seconds(service["TimeoutStopSec"])) < seconds(service["TimeoutStopSec"])
    assert ping("web1", env) == 1 and client.get_all_managers() == []
    assert "Traceback" not in manager.text()


def test_supervisord_recipe_runs_and_stops(client: Client, redis_server: RedisServer, running,
                                           tmp_path: Path) -> None:
    [program] = supervisord_programs().values()
    env = cli_env(PYTHONPATH=str(app_dir(tmp_path)), QW_REDIS_URL=redis_server.url)
    manager = running(local(shlex.split(program["command"])), env, tmp_path / "web1.log")
    wait_for(lambda: ping("web1", env) == 0, timeout=20, what="web1 to answer ping")
    assert manager.stop(program.getint("stopwaitsecs")) < program.getint("stopwaitsecs")
    assert client.get_all_managers() == []


def test_kubernetes_recipe_runs_passes_its_probe_and_stops(client: Client, redis_server: RedisServer,
                                                          running, tmp_path: Path) -> None:
    # The container's environment: POD_NAME from the downward API, QW_REDIS_URL from the Secret.
    env = cli_env(PYTHONPATH=str(app_dir(tmp_path)), QW_REDIS_URL=redis_server.url, POD_NAME=POD_NAME)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    probe = probe_command()

    def liveness() -> int:
        return subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode

    assert liveness() == 1  # no manager of that name yet
    manager = running(local(kubernetes_argv()), env, tmp_path / "pod.log")
    wait_for(lambda: liveness() == 0, timeout=20, what="the liveness probe to pass")
    grace = int(kubernetes_value("terminationGracePeriodSeconds"))
    assert manager.stop(grace) < grace  # TERM to the container's main process
    assert liveness() == 1


@pytest.mark.skipif(shutil.which("hostname") is None, reason="no hostname command")
def test_procfile_recipe_runs_and_stops_when_its_group_gets_term(client: Client, redis_server: RedisServer,
                                                                 running, tmp_path: Path) -> None:
    app = app_dir(tmp_path)
    env = cli_env(PYTHONPATH=str(app), QW_REDIS_URL=redis_server.url, PORT="5000")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    # As honcho and Heroku do: through a shell, from the app's directory.
    manager = running(["sh", "-c", procfile_command()], env, tmp_path / "worker.log", group=True)
    wait_for(lambda: len(client.get_all_managers()) == 1, timeout=20, what="the manager")
    [name] = client.get_all_managers()
    assert name.endswith("-5000")
    wait_for(lambda: ping(name, env) == 0, timeout=20, what="the manager to answer ping")
    assert manager.stop(HEROKU_STOP_SECONDS) < HEROKU_STOP_SECONDS
    assert client.get_all_managers() == []
    assert "Traceback" not in manager.text()
