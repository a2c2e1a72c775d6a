"""Applying the parts of a sync filter (validated by homeserver/filters.py)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """Filter patterns: '*' matches any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _matches_any(patterns: list[str], value: str) -> bool:
    return any(_glob(p).fullmatch(value) for p in patterns)


def event_allowed(
    event_filter: dict[str, Any],
    event_type: str,
    *,
    sender: str | None = None,
    room_id: str | None = None,
) -> bool:
    """Whether an event passes a filter's types/senders/rooms lists."""
    if "not_types" in event_filter and _matches_any(event_filter["not_types"], event_type):
        return False
    if "types" in event_filter and not _matches_any(event_filter["types"], event_type):
        return False
    if sender is not None:
        if sender in event_filter.get("not_senders", ()):
            return False
        if "senders" in event_filter and sender not in event_filter["senders"]:
            return False
    return room_id is None or room_allowed(event_filter, room_id)


def room_allowed(room_filter: dict[str, Any], room_id: str) -> bool:
    """Whether a room passes a filter's rooms/not_rooms lists."""
    if room_id in room_filter.get("not_rooms", ()):
        return False
    return "rooms" not in room_filter or room_id in room_filter["rooms"]
