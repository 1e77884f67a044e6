import math

import pytest

from qw import job
from qw.exceptions import JobDataError

TYPED = {
    "int": 7, "float": 2.5, "neg": -1e-9, "true": True, "false": False, "null": None,
    "text": "héllo ✓ 日本", "list": [1, "two", [3.0], {"four": None}], "dict": {"a": {"b": [True]}},
    "empty_list": [], "empty_dict": {}, "empty": "",
}


def test_round_trip_keeps_json_types() -> None:
    data, meta = job.decode(job.encode(TYPED))
    assert data == TYPED
    assert [type(data[k]) for k in TYPED] == [type(v) for v in TYPED.values()]
    assert meta == {"qw:enc": "json"}


def test_stored_fields_are_readable_json_per_key() -> None:
    assert job.encode({"url": "https://example.org", "n": 3}) == {
        "qw:enc": "json", "url": '"https://example.org"', "n": "3"}


def test_plain_producer_fields_arrive_as_strings() -> None:
    data, meta = job.decode({b"url": b"https://example.org", b"n": b"3"})
    assert data == {"url": "https://example.org", "n": "3"}
    assert meta == {}


@pytest.mark.parametrize(
    "bad, message",
    [
        ([1, 2], "not an array"),
        ("text", "not a string"),
        ({"qw:attempts": 1}, "reserved prefix"),
        ({1: "x"}, "keys must be strings"),
        ({"x": object()}, "is not JSON"),
        ({"x": math.nan}, "is not JSON"),
    ],
)
def test_encode_refuses_what_is_not_a_json_object(bad: object, message: str) -> None:
    with pytest.raises(JobDataError, match=message):
        job.encode(bad)  # type: ignore[arg-type]


def test_decode_names_the_bad_field() -> None:
    with pytest.raises(JobDataError, match="field 'x' is not valid JSON"):
        job.decode({b"qw:enc": b"json", b"x": b"{nope"})
    with pytest.raises(JobDataError, match="not UTF-8"):
        job.decode({b"x": b"\xff\xfe"})


@pytest.mark.parametrize("text, message", [("{", "invalid JSON"), ("[]", "not an array"), ("3", "not a number")])
def test_parse_object(text: str, message: str) -> None:
    with pytest.raises(JobDataError, match=message):
        job.parse_object(text)
    assert job.parse_object('{"a": [1]}') == {"a": [1]}
