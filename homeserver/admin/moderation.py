"""The admin decisions the room service obeys: shadow bans and blocked rooms.

Shadow bans are held in memory (loaded at start, changed by the admin API),
because every event a user sends asks about them. Blocks are asked about only
on joins and invites, so they are read from the database.
"""

from __future__ import annotations

import secrets

from homeserver.cluster.invalidation import CacheInvalidations
from storage.admin_rooms import AdminRoomStore
from storage.admin_users import AdminUserStore

# The shadow bans' name among the mirrors shared by a deployment.
_SHADOW_BANS_SHARED = "shadow_bans"


class Moderation:
    def __init__(self, users: AdminUserStore, rooms: AdminRoomStore) -> None:
        self._users = users
        self._rooms = rooms
        self._shadow_banned: set[str] = set()
        self._shared: CacheInvalidations | None = None

    async def start(self) -> None:
        self._shadow_banned = await self._users.shadow_banned_users()

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a shadow ban set through one
        holds in all (homeserver/cluster/invalidation.py); the banned are few,
        so a change reloads them all."""
        self._shared = shared
        shared.register_mirror(_SHADOW_BANS_SHARED, lambda _user: self.start(), self.start)

    def is_shadow_banned(self, user_id: str) -> bool:
        return user_id in self._shadow_banned

    def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        if banned:
            self._shadow_banned.add(user_id)
        else:
            self._shadow_banned.discard(user_id)
        if self._shared is not None:
            self._shared.tell_others(_SHADOW_BANS_SHARED, user_id)

    async def is_blocked(self, room_id: str) -> bool:
        return await self._rooms.block_of(room_id) is not None

    @staticmethod
    def fake_event_id() -> str:
        """What a shadow-banned sender is told its event is called."""
        return "$" + secrets.token_urlsafe(32)
