"""The tasks scripts/bench_flow.py runs (imported by its workers by module name)."""

from __future__ import annotations

import time
from typing import Any

import qw


def noop(job_id: str, job_data: dict) -> None:
    """A plain job that does nothing."""


@qw.task(name="flow.stamp")
def stamp(n: int) -> float:
    return time.time()


@qw.task(name="flow.latest")
def latest(ends: list[Any]) -> tuple[float, float]:
    """The last member's end and this callback's start."""
    return max(ends), time.time()


@qw.task(name="flow.ok")
def ok() -> str:
    """A no-op task with a small result."""
    return "ok"
