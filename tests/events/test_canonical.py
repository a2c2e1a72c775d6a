"""Canonical JSON and base64 against the spec's vectors, and the JSON input rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homeserver.events.canonical import (
    MAX_SAFE_INT,
    MIN_SAFE_INT,
    check_json_value,
    decode_base64,
    encode_base64,
    encode_canonical_json,
    parse_json,
)
from homeserver.events.errors import InvalidJSONError

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load_vectors(name: str) -> Any:
    """The spec's vectors must be there: a missing file fails the test, never skips it."""
    path = VECTORS / name
    assert path.is_file(), f"spec vectors missing: {path}"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("vector", load_vectors("canonical_json.json")["vectors"])
def test_canonical_json_vectors(vector: dict[str, str]) -> None:
    value = parse_json(vector["input_text"], strict=True)
    assert encode_canonical_json(value) == vector["canonical"].encode("utf-8")


@pytest.mark.parametrize("vector", load_vectors("unpadded_base64.json")["vectors"])
def test_unpadded_base64_vectors(vector: dict[str, str]) -> None:
    raw = vector["input"].encode("utf-8")
    assert encode_base64(raw) == vector["output"]
    assert decode_base64(vector["output"]) == raw


def test_url_safe_base64_uses_the_url_alphabet() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(raw) == "+/+/"
    assert encode_base64(raw, urlsafe=True) == "-_-_"
    assert decode_base64("-_-_") == decode_base64("+/+/") == raw


def test_decode_base64_rejects_non_ascii() -> None:
    with pytest.raises(ValueError):
        decode_base64("é")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e10", 10000000000),
        ("-0", 0),
        ("-0.0", 0),
        ("2.0", 2),
        ("1E2", 100),
        # Exact even where a float would round: 2**53 + 1.
        ("9007199254740993e0", 9007199254740993),
    ],
)
def test_whole_number_literals_are_read_as_integers(text: str, expected: int) -> None:
    value = parse_json(text, strict=False)
    assert type(value) is int
    assert value == expected


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", '{"a": [NaN]}'])
def test_non_finite_numbers_are_never_accepted(text: str) -> None:
    for strict in (False, True):
        with pytest.raises(InvalidJSONError):
            parse_json(text, strict=strict)


def test_floats_are_allowed_only_when_not_strict() -> None:
    assert parse_json('{"a": 1.5}', strict=False) == {"a": 1.5}
    with pytest.raises(InvalidJSONError, match="float"):
        parse_json('{"a": 1.5}', strict=True)


@pytest.mark.parametrize("number", [MAX_SAFE_INT + 1, MIN_SAFE_INT - 1, 2**63])
def test_integers_outside_the_safe_range_are_rejected_when_strict(number: int) -> None:
    text = json.dumps({"a": [number]})
    assert parse_json(text, strict=False) == {"a": [number]}
    with pytest.raises(InvalidJSONError, match="range"):
        parse_json(text, strict=True)


def test_safe_range_bounds_are_accepted_when_strict() -> None:
    assert parse_json(f"[{MAX_SAFE_INT}, {MIN_SAFE_INT}]", strict=True) == [
        MAX_SAFE_INT,
        MIN_SAFE_INT,
    ]


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\xff"}',  # invalid UTF-8
        '{"a": "\\ud800"}',  # lone surrogate: not encodable as UTF-8
        '{"\\udc00": 1}',  # in a key too
        "{",
        '{"a": 1} x',
        "1" * 5000,  # more digits than Python will convert
        "[" * 100_000 + "]" * 100_000,  # nesting deep enough to exhaust the stack
    ],
)
def test_malformed_json_is_rejected(data: str | bytes) -> None:
    with pytest.raises(InvalidJSONError):
        parse_json(data, strict=False)


def test_parse_accepts_bytes_and_keeps_unicode() -> None:
    assert parse_json('{"日": "本"}'.encode(), strict=True) == {"日": "本"}


def test_check_json_value_accepts_booleans_and_null_when_strict() -> None:
    check_json_value({"a": True, "b": False, "c": None, "d": (1, "x")}, strict=True)


def test_check_json_value_rejects_non_json_types() -> None:
    with pytest.raises(InvalidJSONError):
        check_json_value({"a": {1, 2}}, strict=False)
    with pytest.raises(InvalidJSONError):
        check_json_value({1: "a"}, strict=False)
