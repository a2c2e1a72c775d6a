"""JSON from the network, refused at the edge when it could hurt later.

Python's `json` accepts text that the rest of the server cannot live with:
nesting deep enough to exhaust the interpreter's recursion limit, numbers
like `1e400` that become infinity, lone UTF-16 surrogates (`"\\ud800"`) that
no UTF-8 encoder will write back out, and NUL characters that PostgreSQL
TEXT columns refuse. Every JSON body of both listeners, and every JSON query
parameter, goes through `parse_strict_json` once, so no handler, service or
storage module has to think about them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from homeserver.errors import MatrixError, bad_json

# Deeper than any real Matrix payload and far below the interpreter's
# recursion limit, which code walking a parsed value (canonical JSON, push
# rule evaluation) must stay under.
MAX_JSON_DEPTH = 128


def not_json(message: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", message)


def _reject_constant(name: str) -> Any:
    raise not_json(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise bad_json("A number in the request is out of range")
    return value


def parse_strict_json(text: str | bytes, *, allow_nul: bool = False) -> Any:
    """The JSON value of `text`, or a 400 Matrix error saying what is wrong.

    Bytes must be UTF-8. The parser's own recursion is bounded by the
    interpreter (it raises RecursionError long before the C stack is at
    risk); the walk afterwards is iterative and enforces MAX_JSON_DEPTH.
    """
    try:
        decoded = text.decode("utf-8") if isinstance(text, bytes) else text
        value = json.loads(decoded, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise not_json("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError):
        raise not_json() from None
    check_json_value(value, allow_nul=allow_nul)
    return value


def check_json_value(value: Any, *, allow_nul: bool = False) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and strings (keys included)
    that hold NUL (unless `allow_nul`) or a lone surrogate; one iterative
    pass over the value."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, allow_nul)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise not_json(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, allow_nul)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def holds_nul(value: Any) -> bool:
    """Whether a parsed value holds NUL in any string or key."""
    try:
        check_json_value(value)
    except MatrixError:
        return True
    return False


def _check_string(text: str, allow_nul: bool = False) -> None:
    if not allow_nul and "\x00" in text:
        raise bad_json("Strings may not contain NUL characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_json("Strings may not contain lone UTF-16 surrogates") from None


def check_text_param(name: str, value: str) -> None:
    """Refuse a path or query parameter that holds NUL or a lone surrogate."""
    try:
        _check_string(value)
    except MatrixError:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"{name} may not contain NUL or lone surrogates"
        ) from None
