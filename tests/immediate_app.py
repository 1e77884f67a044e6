"""Tasks that tests/test_testing.py runs in immediate mode and with worker hooks."""

from __future__ import annotations

import os

import qw

runs: dict[str, int] = {}
HOOKS_LOG = ""  # a file the hooks append to, set by the test


@qw.task(name="immediate.add")
def add(a, b):
    return a + b


@qw.task(name="immediate.flaky", max_attempts=3)
def flaky(key, fail_times):
    """Ask for a retry ``fail_times`` times, then return the run it succeeded on."""
    runs[key] = runs.get(key, 0) + 1
    if runs[key] <= fail_times:
        raise qw.Retry(0)
    return runs[key]


@qw.task(name="immediate.boom")
def boom(message):
    raise ValueError(message)


@qw.task(name="immediate.total")
def total(values):
    return sum(values)


@qw.task(name="immediate.opaque")
def opaque():
    return object()


@qw.task(name="immediate.pid")
def pid():
    return os.getpid()


def _note(what: str) -> None:
    if HOOKS_LOG:
        with open(HOOKS_LOG, "a") as f:
            f.write(f"{what} {os.getpid()}\n")


def on_start() -> None:
    _note("start")


def on_stop() -> None:
    _note("stop")


def before() -> None:
    _note("before")


def after() -> None:
    _note("after")
