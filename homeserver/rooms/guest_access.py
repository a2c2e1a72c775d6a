"""The spec's server rules for guests in rooms (m.room.guest_access).

A guest may join a room only while its current `m.room.guest_access` says
`can_join`. When that stops being so, through a local change or one from
another server, this server's guests in the room leave it. As Synapse does,
each guest leaves by its own member event: no power level is needed, and
whether someone is a guest stays this server's business.
"""

from __future__ import annotations

import logging

from homeserver.errors import forbidden
from homeserver.events.event import Event
from homeserver.rooms.pipeline import EventPipeline
from storage.events import EventStore
from storage.guests import GuestStore

logger = logging.getLogger(__name__)

GUEST_ACCESS = "m.room.guest_access"


class GuestAccessRules:
    def __init__(self, events: EventStore, guests: GuestStore, pipeline: EventPipeline) -> None:
        self._events = events
        self._guests = guests
        self._pipeline = pipeline

    async def guests_may_join(self, room_id: str) -> bool:
        """Whether the room's current state lets guests join (absent means no)."""
        event_id = await self._events.current_state_event_id(room_id, GUEST_ACCESS, "")
        if event_id is None:
            return False
        stored = (await self._events.get_events([event_id])).get(event_id)
        return stored is not None and stored.event.content.get("guest_access") == "can_join"

    async def check_join(self, room_id: str) -> None:
        """403 for a guest joining a room that does not admit guests."""
        if not await self.guests_may_join(room_id):
            raise forbidden("Guest access is not allowed in this room")

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: after a guest access change that leaves the
        room closed to guests, this server's joined and invited guests leave."""
        if event.type != GUEST_ACCESS or event.state_key != "":
            return
        try:
            if await self.guests_may_join(event.room_id):
                return
            guests = await self._guests.guests_in_room(event.room_id)
        except Exception:
            logger.exception("could not check the guests of %s", event.room_id)
            return
        for user_id in guests:
            try:
                await self._pipeline.send(
                    event.room_id,
                    type="m.room.member",
                    sender=user_id,
                    content={"membership": "leave"},
                    state_key=user_id,
                )
            except Exception:
                # The event is committed whatever happens here; the other
                # guests still leave.
                logger.exception("guest %s could not leave %s", user_id, event.room_id)
