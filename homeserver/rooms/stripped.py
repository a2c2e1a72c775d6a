"""The stripped state of a room: what an invitee or knocker on another server
may see of it before joining (sent with invites and knock answers)."""

from __future__ import annotations

from typing import Any

from homeserver.sync.rooms import STRIPPED_STATE_KEYS
from storage.events import EventStore


async def stripped_room_state(events: EventStore, room_id: str) -> list[dict[str, Any]]:
    """The room's current create event, name, topic, join rules... as PDUs.

    Since spec v1.16 (MSC4311) `invite_room_state` and `knock_room_state`
    hold the create event and every entry as a full PDU of the room's
    version, so that the receiver can check which room they describe and
    who signed them; the receiving server strips them for its clients.
    """
    state_ids = await events.current_state_ids(room_id)
    wanted = [state_ids[k] for k in STRIPPED_STATE_KEYS if k in state_ids]
    loaded = await events.get_events(wanted)
    return [dict(loaded[event_id].event.pdu) for event_id in wanted if event_id in loaded]
