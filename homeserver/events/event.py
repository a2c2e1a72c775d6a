"""The PDU as an immutable value.

An `Event` keeps the exact PDU dict it was built from (`pdu`) next to the
fields the engine reads often, so that the signed JSON can be re-serialised
byte for byte while auth rules and state resolution read plain attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from homeserver.events.room_versions import RoomVersion

StateKey = tuple[str, str]


@attrs.frozen(slots=True, eq=False)
class Event:
    event_id: str
    room_version: RoomVersion
    room_id: str
    type: str
    state_key: str | None
    sender: str
    content: Mapping[str, Any]
    prev_event_ids: tuple[str, ...]
    auth_event_ids: tuple[str, ...]
    depth: int
    origin_server_ts: int
    # Top-level "redacts" in rooms 1-10, content.redacts from room 11 on.
    redacts: str | None
    pdu: Mapping[str, Any] = attrs.field(repr=False)

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    @property
    def state_tuple(self) -> StateKey:
        """(type, state_key) of a state event; only meaningful when is_state."""
        assert self.state_key is not None
        return (self.type, self.state_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)
