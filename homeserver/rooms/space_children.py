"""`m.space.child` events: which count, and in which order the spec lists them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPACE_CHILD = "m.space.child"
_MAX_ORDER_LENGTH = 50


def order_key(child: Mapping[str, Any]) -> tuple[int, str, int, str]:
    """The spec's ordering of space children: valid `order` first, then timestamp, then id."""
    order = child["content"].get("order")
    valid = (
        isinstance(order, str)
        and len(order) <= _MAX_ORDER_LENGTH
        and all(" " <= c <= "~" for c in order)
    )
    ts = child.get("origin_server_ts")
    return (
        0 if valid else 1,
        order if valid else "",
        ts if type(ts) is int else 0,
        child["state_key"],
    )


def has_valid_via(content: Mapping[str, Any]) -> bool:
    via = content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(v, str) and v for v in via)


def valid_child(event: Any) -> bool:
    """Whether a stripped child event from another server has the shape the
    hierarchy relies on (its room id as state key, a valid via)."""
    return (
        isinstance(event, dict)
        and event.get("type") == SPACE_CHILD
        and isinstance(event.get("state_key"), str)
        and event["state_key"].startswith("!")
        and isinstance(event.get("content"), dict)
        and has_valid_via(event["content"])
    )
