"""The edge's JSON parser and server name grammar, on their boundaries."""

from __future__ import annotations

import pytest

from homeserver.errors import MatrixError
from homeserver.identifiers import is_valid_server_name, split_user_id
from homeserver.strict_json import MAX_JSON_DEPTH, parse_strict_json


def _errcode(text: str | bytes) -> str:
    with pytest.raises(MatrixError) as caught:
        parse_strict_json(text)
    assert caught.value.status == 400
    return caught.value.errcode


def test_depth_limit_is_exact():
    assert parse_strict_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    too_deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert _errcode(too_deep) == "M_NOT_JSON"


def test_nesting_far_beyond_the_recursion_limit_is_refused():
    assert _errcode(b"[" * 100_000 + b"]" * 100_000) == "M_NOT_JSON"
    assert _errcode('{"a":' * 100_000 + "1" + "}" * 100_000) == "M_NOT_JSON"


def test_strings_that_are_fine_stay_fine():
    value = parse_strict_json(r'{"emoji": "\ud83d\ude00", "escaped": "\\u0000", "n": 1e308}')
    assert value == {"emoji": "\U0001f600", "escaped": "\\u0000", "n": 1e308}


@pytest.mark.parametrize(
    "text",
    [
        r'{"a": "x\u0000y"}',
        r'{"a\u0000": 1}',
        r'["\ud800"]',
        r'["\udc00\ud800"]',
        r'{"\udfff": 1}',
        '{"n": 1e400}',
        '{"n": -1e400}',
    ],
)
def test_unstorable_values_are_bad_json(text):
    assert _errcode(text) == "M_BAD_JSON"


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', "{", b"\xff"])
def test_not_json(text):
    assert _errcode(text) == "M_NOT_JSON"


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "localhost:8448",
        "matrix.example.org",
        "1.2.3.4:80",
        "[::1]",
        "[2001:db8::1]:8448",
    ],
)
def test_valid_server_names(name):
    assert is_valid_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "bad..host",
        ".example.org",
        "exa mple.org",
        "a_b.org",
        "host:",
        "host:99999",
        "host:8x",
        "1.2.3.999",
        "[::1",
        "[nope]",
        "[::1]x",
        "a" * 64 + ".org",
    ],
)
def test_invalid_server_names(name):
    assert not is_valid_server_name(name)


def test_user_ids_need_a_valid_server_name():
    assert split_user_id("@alice:example.org") == ("alice", "example.org")
    assert split_user_id("@alice:") is None
    assert split_user_id("@alice:bad..host") is None
    assert split_user_id("not-a-user") is None
