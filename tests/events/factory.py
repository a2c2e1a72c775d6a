"""Hand-built events for engine tests.

Auth rules and state resolution never look at hashes or signatures, so tests
build `Event` values directly, with readable ids, instead of signing PDUs.
"""

from __future__ import annotations

import itertools
from typing import Any

from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

_counter = itertools.count(1)


def make_event(
    type: str,
    sender: str,
    content: dict[str, Any] | None = None,
    *,
    state_key: str | None = None,
    room_version: RoomVersion | str = "10",
    room_id: str = "!room:example.org",
    prev: tuple[str, ...] | list[str] = (),
    auth: tuple[str, ...] | list[str] = (),
    depth: int = 1,
    ts: int | None = None,
    event_id: str | None = None,
    redacts: str | None = None,
) -> Event:
    """An Event whose PDU is consistent with its fields (unsigned, unhashed)."""
    if isinstance(room_version, str):
        room_version = KNOWN_ROOM_VERSIONS[room_version]
    n = next(_counter)
    event_id = event_id or f"$e{n}"
    ts = n if ts is None else ts
    content = content or {}
    pdu: dict[str, Any] = {
        "room_id": room_id,
        "type": type,
        "sender": sender,
        "content": content,
        "prev_events": list(prev),
        "auth_events": list(auth),
        "depth": depth,
        "origin_server_ts": ts,
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.updated_redaction_rules:
            content.setdefault("redacts", redacts)
        else:
            pdu["redacts"] = redacts
    return Event(
        event_id=event_id,
        room_version=room_version,
        room_id=room_id,
        type=type,
        state_key=state_key,
        sender=sender,
        content=content,
        prev_event_ids=tuple(prev),
        auth_event_ids=tuple(auth),
        depth=depth,
        origin_server_ts=ts,
        redacts=redacts,
        pdu=pdu,
    )
