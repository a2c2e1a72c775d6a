"""Forgetting rooms when users leave them (`forget_rooms_on_leave`).

The spec's `m.forget_forced_upon_leave` capability (MSC4267, v1.18) tells
clients that this server forgets a room for a user as soon as they stop
being in it, whether they left, were kicked or were banned, as if they had
called `/forget`. As Synapse's option of the same name, it follows the room's
current state: the pipeline calls this after each committed event, local or
from another server, and a member event that leaves one of our users out of
the room forgets it. Rejected invites to rooms this server is not in were
never rooms the user was in, and are left alone (as Synapse does).
"""

from __future__ import annotations

import logging

from homeserver.events.event import Event
from storage.rooms import RoomStore

logger = logging.getLogger(__name__)

_GONE = ("leave", "ban")


class ForgetOnLeave:
    def __init__(self, rooms: RoomStore, *, server_name: str) -> None:
        self._rooms = rooms
        self._suffix = ":" + server_name

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: forget the room for a local user it just lost."""
        if event.type != "m.room.member" or event.state_key is None:
            return
        user_id = event.state_key
        if not user_id.endswith(self._suffix) or event.content.get("membership") not in _GONE:
            return
        try:
            # Only while this is still their membership: a rejoin that raced
            # ahead (or an older event resolved away) must not hide the room.
            membership, event_id = await self._rooms.membership(event.room_id, user_id)
            if membership in _GONE and event_id == event.event_id:
                await self._rooms.forget(user_id, event.room_id)
        except Exception:
            # The event is committed either way; the user can still /forget.
            logger.exception("could not forget %s for %s", event.room_id, user_id)
