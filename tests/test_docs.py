"""The README is the front door: what it shows of the CLIs must be what they print."""

from pathlib import Path

import pytest

from qw.cli import client, manager

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("module", [manager, client], ids=["qw-manager", "qw-client"])
def test_readme_shows_each_cli_usage_as_it_is(module) -> None:
    assert module.__doc__.strip() in README


def test_readme_install_and_test_commands_are_the_ones_ci_runs() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[test]'" in README and "pip install --quiet -e '.[test]'" in ci
    assert "\npytest\n" in README and "\npytest\n" in ci
