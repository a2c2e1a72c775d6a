"""Room events as the legacy (v1) client APIs give them.

/events, /initialSync and room initialSync predate `unsigned`: clients of
that era read `user_id` (the sender) and `age`, `prev_content`,
`replaces_state` and `redacted_because` at the top level of an event.
Synapse still serves them so on these endpoints, and SyTest reads them; the
event keeps its current fields as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_FROM_UNSIGNED = (
    "age",
    "redacted_because",
    "replaces_state",
    "prev_content",
    "invite_room_state",
    "knock_room_state",
)


def client_v1(event: dict[str, Any]) -> dict[str, Any]:
    result = dict(event)
    if "sender" in result:
        result["user_id"] = result["sender"]
    unsigned = result.get("unsigned", {})
    for key in _FROM_UNSIGNED:
        if key in unsigned:
            result[key] = unsigned[key]
    return result


def clients_v1(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [client_v1(e) for e in events]
