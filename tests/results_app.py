"""Tasks whose results the results tests wait for, run by real workers (qw-manager results_app)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import qw


@qw.task
def add(a: int, b: int) -> int:
    return a + b


@qw.task
def echo(value: Any) -> Any:
    return value


@qw.task(max_attempts=1)
def boom(message: str) -> None:
    raise ValueError(message)


@qw.task
def slow(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


@qw.task(max_attempts=3)
def die_once(marker: str, value: Any) -> Any:
    """SIGKILLs its own worker on the first run (the marker file tells), returns ``value`` on the next."""
    path = Path(marker)
    if not path.exists():
        path.write_text("x")
        os.kill(os.getpid(), 9)
    return value


@qw.task
def a_set() -> Any:
    return {1, 2}


@qw.task(result_ttl=2)
def short_lived(x: int) -> int:
    return x


@qw.task(tags=("reports",))
def tagged(x: int) -> int:
    return x


class Square(qw.Job):
    def work(self, x: int) -> int:
        return x * x


def plain(job_id: str, data: dict[str, Any]) -> Any:
    """A function target: returns what the job says."""
    return data.get("return")


@qw.task
def total(values: list, plus: int = 0) -> int:
    return sum(values) + plus


@qw.task
def double(x: int) -> int:
    return 2 * x


@qw.task(max_attempts=3)
def flaky(marker: str, value: Any) -> Any:
    """Fails its first run (the marker file tells), returns ``value`` on the next."""
    path = Path(marker)
    if not path.exists():
        path.write_text("x")
        raise RuntimeError("first run fails")
    return value


class Pipeline:
    """A target whose methods are the stages of a pipeline, one per queue (qw-manager results_app:Pipeline)."""

    def underpants(self, job: Any) -> None:
        job.complete(next="profit", data={**job.data, "stages": [*job.data.get("stages", []), "underpants"]})

    def profit(self, job: Any) -> Any:
        return [*job.data["stages"], "profit"]

    def process(self, job: Any) -> Any:
        job.complete(next="underpants", data={"stages": ["process"]})
