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
