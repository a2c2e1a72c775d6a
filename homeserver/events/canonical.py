"""Canonical JSON, the JSON rules the spec imposes on incoming data, and base64.

Hashes and signatures are computed over canonical JSON, so every server must
produce the same bytes for the same value. The encoding itself comes from the
`canonicaljson` package; this module adds the parse side: reading JSON text
into values that canonicalise unambiguously, and rejecting values the spec
forbids (non-finite numbers always; floats and unsafe integers in rooms with
strict canonical JSON, that is room version 6 and later).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import canonicaljson
import unpaddedbase64

from homeserver.events.errors import InvalidJSONError

# The integer range canonical JSON allows: what an IEEE double holds exactly.
MIN_SAFE_INT = -(2**53) + 1
MAX_SAFE_INT = 2**53 - 1


def encode_canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of `value`: the input of every hash and signature."""
    return canonicaljson.encode_canonical_json(value)


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON at all.
    raise InvalidJSONError(f"{name} is not a valid JSON number")


def _parse_float(literal: str) -> int | float:
    """Read a number with a fraction or exponent.

    The spec canonicalises `1e10` as `10000000000`, so a literal whose value is
    a whole number becomes an int; Decimal keeps that exact where float would
    round. Anything else stays a float, which strict rooms reject later.
    """
    as_float = float(literal)
    if not math.isfinite(as_float):
        raise InvalidJSONError(f"number out of range: {literal[:40]}")
    exact = Decimal(literal)
    if exact == exact.to_integral_value():
        return int(exact)
    return as_float


_decoder = json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject_constant)


def parse_json(data: str | bytes, *, strict: bool) -> Any:
    """Parse JSON text received from a client or a server.

    `strict` applies the canonical JSON number rules (room versions 6 and later,
    and any endpoint that wants them). Raises `InvalidJSONError`.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _decoder.decode(text)
    except InvalidJSONError:
        raise
    except UnicodeDecodeError as e:
        raise InvalidJSONError(f"JSON text is not valid UTF-8: {e.reason}") from e
    except RecursionError as e:
        raise InvalidJSONError("JSON text is nested too deeply") from e
    except ValueError as e:  # JSONDecodeError, and int() of over-long digit strings
        raise InvalidJSONError(f"invalid JSON: {e}") from e
    check_json_value(value, strict=strict)
    return value


def check_json_value(value: Any, *, strict: bool) -> None:
    """Check an already-parsed JSON value against the spec's rules.

    Always: strings and keys must be encodable as UTF-8 (a lone surrogate from
    a `\\ud800` escape is not), and floats must be finite. With `strict`: no
    floats at all, and integers within [MIN_SAFE_INT, MAX_SAFE_INT]. Walks the
    value iteratively so that deep nesting cannot exhaust the Python stack.
    """
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidJSONError("JSON object keys must be strings")
                _check_string(key)
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if strict and not MIN_SAFE_INT <= item <= MAX_SAFE_INT:
                raise InvalidJSONError(f"integer out of the canonical JSON range: {item}")
        elif isinstance(item, float):
            if strict:
                raise InvalidJSONError(f"floats are not allowed in canonical JSON: {item!r}")
            if not math.isfinite(item):
                raise InvalidJSONError(f"{item!r} is not a valid JSON number")
        else:
            raise InvalidJSONError(f"not a JSON value: {type(item).__name__}")


def _check_string(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidJSONError("JSON string contains an unpaired surrogate") from e


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64, standard alphabet unless `urlsafe` (event ids in rooms 4+)."""
    return unpaddedbase64.encode_base64(data, urlsafe=urlsafe)


def decode_base64(text: str) -> bytes:
    """Decode unpadded base64 in either alphabet; raises ValueError on bad input."""
    try:
        return unpaddedbase64.decode_base64(text)
    except ValueError as e:  # binascii.Error, or non-ASCII text
        raise ValueError(f"invalid unpadded base64: {text[:40]!r}") from e
