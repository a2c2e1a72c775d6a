"""Query parameters shared by the admin endpoints (Synapse's paging conventions)."""

from __future__ import annotations

from homeserver.api.http import ClientRequest
from homeserver.api.params import BIGINT
from homeserver.errors import invalid_param

MAX_LIMIT = 1000


def query_int(req: ClientRequest, name: str, default: int | None = None) -> int | None:
    value = req.query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid_param(f"Query parameter {name!r} must be an integer") from None
    if number not in BIGINT:
        raise invalid_param(f"Query parameter {name!r} is out of range")
    return number


def query_bool_or_none(req: ClientRequest, name: str) -> bool | None:
    if name not in req.query:
        return None
    return req.query_bool(name)


def paging(req: ClientRequest, *, default_limit: int = 100) -> tuple[int, int, bool]:
    """(offset, limit, backwards) from `from`, `limit` and `dir`."""
    offset = query_int(req, "from", 0)
    limit = query_int(req, "limit", default_limit)
    assert offset is not None and limit is not None
    if offset < 0:
        raise invalid_param(
            "Query parameter from must be a string representing a positive integer."
        )
    if limit < 0:
        raise invalid_param("Query parameter limit must be a positive integer.")
    direction = req.query.get("dir", "f")
    if direction not in ("f", "b"):
        raise invalid_param("Unknown direction: " + direction)
    return offset, min(limit, MAX_LIMIT), direction == "b"


def order_by(req: ClientRequest, allowed: frozenset[str], default: str) -> str:
    value = req.query.get("order_by", default)
    if value not in allowed:
        raise invalid_param(f"Unknown value for order_by: {value}")
    return value
