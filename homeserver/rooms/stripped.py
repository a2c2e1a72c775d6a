"""The stripped state of a room: what an invitee or knocker on another server
may see of it before joining (sent with invites and knock answers)."""

from __future__ import annotations

from typing import Any

from homeserver.sync.rooms import STRIPPED_STATE_KEYS
from storage.events import EventStore


async def stripped_room_state(events: EventStore, room_id: str) -> list[dict[str, Any]]:
    """The room's current name, topic, join rules... as stripped events.

    The create event goes whole (a full PDU), as the spec asks from v1.16 on:
    the receiver can then check the room id and version it names.
    """
    state_ids = await events.current_state_ids(room_id)
    wanted = [state_ids[k] for k in STRIPPED_STATE_KEYS if k in state_ids]
    loaded = await events.get_events(wanted)
    stripped = []
    for event_id in wanted:
        if event_id not in loaded:
            continue
        event = loaded[event_id].event
        if event.type == "m.room.create":
            stripped.append(dict(event.pdu))
        else:
            stripped.append(
                {
                    "type": event.type,
                    "state_key": event.state_key,
                    "content": dict(event.content),
                    "sender": event.sender,
                }
            )
    return stripped
