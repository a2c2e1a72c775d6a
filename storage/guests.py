"""Guest accounts: their upgrade to full accounts, and finding them in a room.

A guest is an ordinary row of `users` with `is_guest` set; creating one is
`UserStore.create_user(..., is_guest=True)`.
"""

from __future__ import annotations

import asyncpg


class GuestStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def upgrade(self, user_id: str, password_hash: str | None) -> bool:
        """Make a guest a full account with this password; False if `user_id`
        is not (or no longer) an active guest, so two upgrades cannot both win."""
        status = await self._pool.execute(
            """UPDATE users SET is_guest = FALSE, password_hash = $2
               WHERE user_id = $1 AND is_guest AND NOT deactivated""",
            user_id,
            password_hash,
        )
        return status == "UPDATE 1"

    async def guests_in_room(self, room_id: str) -> list[str]:
        """This server's guests joined to or invited into the room."""
        rows = await self._pool.fetch(
            """SELECT c.state_key FROM current_state c
               JOIN users u ON u.user_id = c.state_key
               WHERE c.room_id = $1 AND c.type = 'm.room.member'
                 AND c.membership IN ('join', 'invite') AND u.is_guest
               ORDER BY c.state_key""",
            room_id,
        )
        return [r["state_key"] for r in rows]
