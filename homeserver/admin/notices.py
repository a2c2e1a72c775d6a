"""Server notices: messages from the server to one user, in a room of their own.

As Synapse: the room is created by the notices user on the first notice,
the user is invited (not joined: they accept it like any invite) and the room
is tagged m.server_notice for them. Members other than the notices user get
power level -10, so the room stays a one-way channel.
"""

from __future__ import annotations

from typing import Any

from homeserver.config import ServerNoticesConfig
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.identifiers import user_id_for
from homeserver.requester import Requester
from homeserver.rooms.service import RoomService
from homeserver.tags import TagService
from storage.admin_rooms import AdminRoomStore
from storage.rooms import RoomStore
from storage.users import UserExistsError, UserStore

SERVER_NOTICE_TAG = "m.server_notice"


class ServerNotices:
    def __init__(
        self,
        config: ServerNoticesConfig,
        *,
        users: UserStore,
        rooms: RoomService,
        room_store: RoomStore,
        store: AdminRoomStore,
        tags: TagService,
        server_name: str,
    ) -> None:
        self._config = config
        self._users = users
        self._rooms = rooms
        self._room_store = room_store
        self._store = store
        self._tags = tags
        self._server_name = server_name

    def _sender(self) -> str:
        if self._config.system_mxid_localpart is None:
            raise MatrixError(400, "M_UNKNOWN", "Server notices are not enabled on this server")
        return user_id_for(self._config.system_mxid_localpart, self._server_name)

    async def send(
        self, user_id: str, event_type: str, content: dict[str, Any], state_key: str | None
    ) -> str:
        """Send a notice to a local user; return the event id."""
        sender = self._sender()
        if not user_id.endswith(":" + self._server_name):
            raise invalid_param("Server notices can only be sent to local users")
        if user_id == sender:
            raise invalid_param("The notices user cannot be sent notices")
        user = await self._users.get_user(user_id)
        if user is None or user.deactivated:
            raise not_found("User not found")
        room_id = await self._room_for(sender, user_id)
        stored = await self._rooms.send_event(
            Requester(sender, "", 0), room_id, event_type, content, state_key=state_key
        )
        return stored.event.event_id

    async def _room_for(self, sender: str, user_id: str) -> str:
        await self._ensure_sender(sender)
        notices = Requester(sender, "", 0)
        room_id = await self._store.notice_room(user_id)
        if room_id is None or not await self._room_store.exists(room_id):
            room_id = await self._rooms.create_room(
                notices,
                {
                    "preset": "private_chat",
                    "name": self._config.room_name,
                    "invite": [user_id],
                    "power_level_content_override": {"users_default": -10},
                },
            )
            await self._tags.put(user_id, user_id, room_id, SERVER_NOTICE_TAG, {})
            await self._store.set_notice_room(user_id, room_id)
            return room_id
        membership, _ = await self._room_store.membership(room_id, user_id)
        if membership not in ("join", "invite"):
            await self._rooms.set_membership(notices, room_id, user_id, "invite")
        return room_id

    async def _ensure_sender(self, sender: str) -> None:
        if await self._users.get_user(sender) is not None:
            return
        try:
            await self._users.create_user(
                sender, None, displayname=self._config.system_mxid_display_name
            )
        except UserExistsError:
            return
