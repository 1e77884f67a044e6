"""Reading jobs for ``qw-client queue``: one JSON object, or JSON Lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..exceptions import JobDataError
from ..job import json_kind, parse_object


def read_text(path: str) -> str:
    """The contents of ``path``, or of stdin for ``-``, as text."""
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except OSError as exc:
        raise JobDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise JobDataError(f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_jobs(text: str, source: str) -> list[dict[str, Any]]:
    """One job from a JSON object, or one per line from JSON Lines.

    Every line is checked before any job is queued; the first bad one is
    reported with its line number.
    """
    if not text.strip():
        raise JobDataError(f"{source}: no job in it")
    try:
        whole = json.loads(text)
    except ValueError as exc:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) == 1:
            raise JobDataError(f"{source}: invalid JSON: {exc}") from None
        return [_line(number, line, source) for number, line in lines]
    if not isinstance(whole, dict):
        raise JobDataError(f"{source}: job data must be a JSON object, not {json_kind(whole)}")
    return [whole]


def _line(number: int, line: str, source: str) -> dict[str, Any]:
    try:
        return parse_object(line)
    except JobDataError as exc:
        raise JobDataError(f"{source}, line {number}: {exc}") from None
