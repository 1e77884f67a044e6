"""Reading jobs for ``qw-client queue``: one JSON object, or JSON Lines; a task's arguments."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

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


def parse_arguments(args: Optional[str], kwargs: Optional[str]) -> tuple[list[Any], dict[str, Any]]:
    """A task's positional arguments (a JSON array) and keyword arguments (a JSON object), from text.

    Either may be None: none of that kind. NaN and Infinity, which Python
    reads but JSON does not have, are refused here, as the call would.
    """
    positional = [] if args is None else _strict_json(args, "task arguments")
    if not isinstance(positional, list):
        raise JobDataError(f"task arguments must be a JSON array, not {_kind(positional)}")
    keywords = {} if kwargs is None else _strict_json(kwargs, "--kwargs")
    if not isinstance(keywords, dict):
        raise JobDataError(f"--kwargs must be a JSON object, not {_kind(keywords)}")
    return positional, keywords


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise JobDataError(f"{what}: invalid JSON: {exc}") from None


def _kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else json_kind(value)
