"""How a job's data is stored in its ``job:<id>`` hash, and read back.

Each key of the user's dict becomes one hash field, its value JSON-encoded, so
``redis-cli HGETALL job:<id>`` stays readable and JSON types survive. The
field ``qw:enc`` = ``json`` says so; a hash without it comes from a plain
producer and its values reach the target as strings. Fields starting with
``qw:`` are qw's metadata and never reach the target.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from .exceptions import JobDataError
from .keys import META_PREFIX

ENCODING_FIELD = META_PREFIX + "enc"
JSON_ENCODING = "json"

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


def encode(data: Mapping[str, Any]) -> dict[str, str]:
    """Hash fields for ``data``; raise :class:`JobDataError` if it is not a JSON object."""
    if not isinstance(data, Mapping):
        raise JobDataError(f"job data must be a JSON object, not {json_kind(data)}")
    fields = {ENCODING_FIELD: JSON_ENCODING}
    for key, value in data.items():
        if not isinstance(key, str):
            raise JobDataError(f"job data keys must be strings, got {key!r}")
        if key.startswith(META_PREFIX):
            raise JobDataError(f"job data key {key!r} uses the reserved prefix {META_PREFIX!r}")
        try:
            fields[key] = _dumps(value)
        except (TypeError, ValueError) as exc:
            raise JobDataError(f"job data field {key!r} is not JSON: {exc}") from None
    return fields


def decode(raw: Mapping[bytes | str, bytes | str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split a stored hash into (user data, qw metadata).

    Raises :class:`JobDataError` naming the field that cannot be decoded.
    """
    return decode_pairs([x for pair in raw.items() for x in pair])


def decode_pairs(items: Sequence[bytes | str]) -> tuple[dict[str, Any], dict[str, str]]:
    """:func:`decode` for a flat ``[field, value, field, value, ...]`` list, as HGETALL replies.

    This runs once per job in every worker: keep it lean.
    """
    try:
        texts = [x.decode("utf-8") if type(x) is bytes else x for x in items]
    except UnicodeDecodeError:
        _name_undecodable(items)
        raise
    data: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for i in range(0, len(texts) - 1, 2):
        key = texts[i]
        if key.startswith(META_PREFIX):
            meta[key] = texts[i + 1]
        else:
            data[key] = texts[i + 1]
    if meta.get(ENCODING_FIELD) == JSON_ENCODING:
        for key, value in data.items():
            try:
                data[key] = _loads(value)
            except ValueError as exc:
                raise JobDataError(f"field {key!r} is not valid JSON: {exc}") from None
    return data, meta


def _name_undecodable(items: Sequence[bytes | str]) -> None:
    for i in range(0, len(items) - 1, 2):
        name = _text(items[i], "field name")
        _text(items[i + 1], f"field {name!r}")


def parse_object(text: str) -> dict[str, Any]:
    """Parse one JSON document that must be an object (CLI input)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise JobDataError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JobDataError(f"job data must be a JSON object, not {json_kind(value)}")
    return value


def _text(value: bytes | str, what: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise JobDataError(f"{what} is not UTF-8 text") from None


def json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__
