"""The rooms two users are both joined to (MSC2666)."""

from __future__ import annotations

import asyncpg


class MutualRoomStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def mutual_rooms(self, user_id: str, other_user_id: str) -> list[str]:
        """Ids of the rooms both are joined to, in code point order (the
        paging order: C collation, as Python compares strings)."""
        rows = await self._pool.fetch(
            """SELECT a.room_id FROM current_state a
               JOIN current_state b ON b.room_id = a.room_id AND b.type = 'm.room.member'
                                   AND b.state_key = $2 AND b.membership = 'join'
               WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'
               ORDER BY a.room_id COLLATE "C"
            """,
            user_id,
            other_user_id,
        )
        return [r["room_id"] for r in rows]
