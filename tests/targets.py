"""Targets the tests run in real worker processes.

Each run leaves files in ``job_data["dir"]``: ``<id>.started.<n>`` when it
begins and ``<id>.done.<n>`` (holding the data it got) when it ends, so a
test can count runs across processes without touching the Redis under test.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any


def _mark(job_id: str, data: dict[str, Any], what: str, body: str = "") -> Path:
    path = Path(data["dir"]) / f"{job_id}.{what}.{uuid.uuid4().hex}"
    path.write_text(body)
    return path


def record(job_id: str, data: dict[str, Any]) -> None:
    """Record the run; sleep ``data["sleep"]`` seconds in between if given."""
    _mark(job_id, data, "started", str(os.getpid()))
    if data.get("sleep"):
        time.sleep(float(data["sleep"]))
    _mark(job_id, data, "done", json.dumps({"data": data, "pid": os.getpid()}))


def fail(job_id: str, data: dict[str, Any]) -> None:
    _mark(job_id, data, "started")
    raise ValueError(f"bad value {data.get('x')!r}")


def _first_run(job_id: str, data: dict[str, Any]) -> bool:
    return not list(Path(data["dir"]).glob(f"{job_id}.started.*"))


def die_once(job_id: str, data: dict[str, Any]) -> None:
    """The first run kills its own process (os._exit or a segfault); later runs record."""
    if _first_run(job_id, data):
        _mark(job_id, data, "started")
        if data["how"] == "segfault":
            faulthandler.disable()  # the crash is the point; keep pytest's dump out of the log
            ctypes.string_at(0)
        os._exit(13)
    record(job_id, data)


def die(job_id: str, data: dict[str, Any]) -> None:
    """A poison job: kills its worker on every run."""
    _mark(job_id, data, "started")
    if data["how"] == "segfault":
        faulthandler.disable()
        ctypes.string_at(0)
    os._exit(13)


def exhaust_memory(job_id: str, data: dict[str, Any]) -> None:
    """Allocate past a lowered address-space limit: MemoryError, and the worker lives on."""
    import resource

    _mark(job_id, data, "started")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, hard))
    try:
        blob = bytearray(4 * 1024**3)
        del blob
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def sleep_deaf(job_id: str, data: dict[str, Any]) -> None:
    """Sleep with SIGALRM blocked, like a job stuck in C code that Python cannot interrupt."""
    import signal

    _mark(job_id, data, "started")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(float(data["sleep"]))


_hoard: list[bytes] = []


def hoard(job_id: str, data: dict[str, Any]) -> None:
    """Keep ``data["mb"]`` MB alive in the worker after the job, as a leak would."""
    _hoard.append(b"x" * int(data["mb"] * 2**20))
    record(job_id, data)


def mixed(job_id: str, data: dict[str, Any]) -> None:
    """``data["do"]``: "ok" records, "fail" raises, "die_once" kills its worker on the first run."""
    {"ok": record, "fail": fail, "die_once": die_once}[data["do"]](job_id, data)

