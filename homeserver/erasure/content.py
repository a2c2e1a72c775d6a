"""Whether an event's content is erased for a viewer.

A user who deactivates with `erase: true` has their events' content hidden,
as Synapse does: users who were joined to the room when an event was sent
still see it whole; everyone else (later joiners, people outside the room,
data exports made for someone else) sees it redacted, as the redaction
algorithm of its room version leaves it. A legal hold on the room or on the
sender keeps the content visible to all (storage/erasure.py decides which
senders are erased, holds included).

History visibility (rooms/visibility.py) applies this to every timeline read
with the membership facts it already loaded; `ErasedContent.apply` is for
exports and other reads of events that history visibility does not filter,
`apply_to_state` for a room's state (/state, the state around /context,
/sync's state and sliding sync's required_state). For
a batch of events they cost one query when nobody in it erased their account
and is not under a legal hold, three at most otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from homeserver.events.redaction import redact
from storage.erasure import ErasureStore, RoomSender
from storage.events import EventStore, StoredEvent
from storage.state import StateKey, StateStore

# State that configures the room rather than saying anything of its sender:
# redacted in a room's current state it would change the room for the reader
# (a create event losing its room version before room 11, an encryption event
# losing its algorithm), so state reads keep it whole.
ROOM_CONFIGURATION = frozenset(
    {
        "m.room.create",
        "m.room.encryption",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.server_acl",
        "m.room.tombstone",
    }
)


def pruned(stored: StoredEvent) -> StoredEvent:
    """The event with its content redacted (the stored original is untouched)."""
    event = stored.event
    content = redact(dict(event.pdu), event.room_version)["content"]
    return attrs.evolve(stored, event=attrs.evolve(event, content=content))


class ErasedContent:
    def __init__(self, store: ErasureStore, state: StateStore, events: EventStore) -> None:
        self._store = store
        self._state = state
        self._events = events

    async def erased_senders(self, pairs: Iterable[RoomSender]) -> set[RoomSender]:
        """Of these (room, sender) pairs, those whose events are erased (held ones are not)."""
        return await self._store.erased(pairs)

    async def erased_ids(self, viewer: str | None, events: Sequence[StoredEvent]) -> set[str]:
        """The ids of the events whose content `viewer` must see redacted.

        `viewer` None is someone who was in none of the rooms (an export of a
        room for a compliance request, say): every erased event is erased for
        them. A viewer's own events are never erased for them.
        """
        erased = await self._store.erased(
            (s.event.room_id, s.event.sender) for s in events if s.event.sender != viewer
        )
        suspects = [
            s
            for s in events
            if s.event.sender != viewer and (s.event.room_id, s.event.sender) in erased
        ]
        if viewer is None or not suspects:
            return {s.event.event_id for s in suspects}
        key: StateKey = ("m.room.member", viewer)
        groups = await self._state.state_entries(
            {s.state_group for s in suspects if s.state_group is not None}, [key]
        )
        member_ids = {entries[key] for entries in groups.values() if key in entries}
        members = await self._events.get_events(member_ids) if member_ids else {}

        def joined_at(stored: StoredEvent) -> bool:
            entries = groups.get(stored.state_group, {}) if stored.state_group else {}
            member = members.get(entries.get(key, ""))
            return member is not None and member.event.content.get("membership") == "join"

        return {s.event.event_id for s in suspects if not joined_at(s)}

    async def apply(self, viewer: str | None, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """The events as `viewer` sees them: erased ones redacted, in the order given."""
        erased = await self.erased_ids(viewer, events)
        return [pruned(s) if s.event.event_id in erased else s for s in events]

    async def apply_to_state(
        self, viewer: str | None, state: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """A room's state as `viewer` sees it: as `apply`, except that the
        state configuring the room (`ROOM_CONFIGURATION`) stays whole."""
        erased = await self.erased_ids(
            viewer, [s for s in state if s.event.type not in ROOM_CONFIGURATION]
        )
        return [pruned(s) if s.event.event_id in erased else s for s in state]
