"""A new display name or avatar reaches every room the user is in.

Clients show members by their member event, not by their profile, so (as
Synapse does) a profile change is followed by a fresh join event in each
joined room carrying the new display name and avatar. It runs before the
profile request answers: once the client sees 200, every room shows the new
name; if the server stops half-way, the client sees no 200, and its retry
finishes the job (rooms already showing the name are skipped).
"""

from __future__ import annotations

import logging

from homeserver.errors import MatrixError
from homeserver.requester import Requester
from homeserver.rooms.service import RoomService

logger = logging.getLogger(__name__)


class MemberProfileUpdater:
    def __init__(self, rooms: RoomService) -> None:
        self._rooms = rooms

    async def profile_changed(self, user_id: str) -> None:
        """ProfileService listener: send the user's new member event to each joined room.

        A room that refuses it (an auth rule, a room being torn down) keeps
        the old name; the others are still updated.
        """
        # The user acts on their own behalf; set_membership reads only the id.
        requester = Requester(user_id, device_id="", token_id=0)
        for room_id in await self._rooms.joined_rooms(user_id):
            try:
                await self._rooms.set_membership(requester, room_id, user_id, "join")
            except MatrixError as e:
                logger.warning(
                    "not updating %s's member event in %s: %s", user_id, room_id, e.message
                )
