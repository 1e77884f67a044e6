import re
from pathlib import Path

import pytest

from qw.exceptions import ConfigError
from qw.keys import LAYOUT, Keys, manager_of_worker, validate_manager_name, worker_name

README = Path(__file__).parent.parent / "README.md"


def test_key_names_without_namespace_are_the_seed_layout() -> None:
    keys = Keys()
    assert keys.all_managers == "all:managers"
    assert keys.all_jobs == "all:jobs"
    assert keys.job("42") == "job:42"
    assert keys.manager_workers("box") == "box:workers"
    assert keys.manager_jobs("box") == "box:jobs"
    assert keys.worker_jobs("box:1") == "box:1:jobs"


def test_namespace_prefixes_every_key() -> None:
    keys = Keys("{app}:")
    names = [keys.all_managers, keys.all_jobs, keys.all_failed, keys.job("1"),
             keys.manager_workers("m"), keys.manager_jobs("m"), keys.worker_jobs("m:1"),
             keys.manager_heartbeat("m")]
    assert all(name.startswith("{app}:") for name in names)


@pytest.mark.parametrize("name", ["all", "job", "a:b", "a b", "tab\there", ""])
def test_bad_manager_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        validate_manager_name(name)


def test_worker_names_derive_from_their_manager() -> None:
    assert worker_name("box.example.org", 3) == "box.example.org:3"
    assert manager_of_worker("box.example.org:3") == "box.example.org"
    with pytest.raises(ConfigError):
        manager_of_worker("nocolon")


def test_readme_key_table_matches_the_code() -> None:
    text = README.read_text()
    header = text.index("| key | type | meaning |")
    rows = []
    for line in text[header:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((re.sub(r"`", "", cells[0]), cells[1]))
    assert rows == [(key, kind) for key, kind, _meaning in LAYOUT]
