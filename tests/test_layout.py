"""The code's shape holds: one table of manager options that every spelling follows, no import cycles."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from qw import Manager
from qw.cli import manager as manager_cli
from qw.cli.manager import read_config
from qw.exceptions import ConfigError
from qw.options import ARGUMENTS, OPTIONS, RELOADABLE

PACKAGE = Path(__file__).parent.parent / "qw"
NOT_OPTIONS = {"self", "client", "options_source"}  # Manager arguments that are objects, not settings


def test_manager_takes_exactly_the_options_of_the_table() -> None:
    parameters = inspect.signature(Manager).parameters
    assert set(parameters) - NOT_OPTIONS == set(ARGUMENTS)
    by_name = {option.name: option for option in OPTIONS}
    for name in ARGUMENTS:
        if name != "target":  # the one required argument
            assert parameters[name].default == by_name[name].default, name


def test_usage_text_lists_each_option_with_a_flag_once() -> None:
    usage = manager_cli.__doc__
    for option in OPTIONS:
        if option.flag and not option.group:
            assert usage.count(f"  {option.flag}") == 1, option.flag
            assert option.help.split()[0] in usage


def test_every_default_in_the_help_is_the_default_the_manager_uses() -> None:
    for option in OPTIONS:
        stated = re.search(r"default: ([0-9][0-9.]*?)\.?$", option.help)
        if stated:
            default = option.default
            assert stated.group(1) == (f"{default:g}" if isinstance(default, float) else str(default))


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.flag and not o.group], ids=lambda o: o.cli)
def test_each_flag_is_a_configuration_file_key(option, tmp_path: Path) -> None:
    key = option.cli[2:]
    value = "127.0.0.1" if option.parse.__name__ == "text" else "2"
    path = tmp_path / "qw.toml"
    path.write_text(f'{key} = "{value}"\n{key.replace("-", "_")} = "{value}"\n' if "-" in key
                    else f'{key} = "{value}"\n')
    assert read_config(str(path))[option.cli] == ([value] if option.repeat else value)


def test_an_unknown_file_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qw.toml"
    path.write_text("wrokers = 2\n")
    with pytest.raises(ConfigError, match="unknown option 'wrokers'"):
        read_config(str(path))


def test_reloadable_options_are_the_ones_a_reload_may_change() -> None:
    assert set(RELOADABLE) == {"target", "num_workers", "graceful_timeout", "max_attempts", "backoff",
                               "job_timeout", "kill_grace", "max_jobs_per_worker", "max_memory_per_worker",
                               "poll_interval", "tasks", "queues", "allow", "result_ttl", "max_result_size"}


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The qw modules ``path`` imports, at module level or inside a function: a cycle dodged by
    importing late is a cycle all the same."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.add(name if name in modules else target)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qw"):
            found.add(node.module)
    return found


def test_no_import_cycles_in_the_package() -> None:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        modules[".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")] = path
    graph = {name: {m for m in _imports(path, set(modules)) if m in modules and m != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
