"""Which servers and users are in which rooms, asked for many rooms at once:
what the hierarchy and the room summary need to decide who may see a room."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import asyncpg

_SERVER_PART = "substring(state_key FROM position(':' IN state_key) + 1)"


class RoomServersStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def rooms_with_server(
        self,
        room_ids: Iterable[str],
        server_name: str,
        memberships: Collection[str] = ("join",),
    ) -> set[str]:
        """Those of the rooms where a user of `server_name` has one of these
        memberships now (one query)."""
        rows = await self._pool.fetch(
            f"""SELECT DISTINCT room_id FROM current_state
                WHERE room_id = ANY($1::text[]) AND type = 'm.room.member'
                  AND membership = ANY($3::text[]) AND {_SERVER_PART} = $2""",
            list(room_ids),
            server_name,
            list(memberships),
        )
        return {r["room_id"] for r in rows}

    async def memberships_of(self, user_id: str, room_ids: Iterable[str]) -> dict[str, str]:
        """{room: the user's membership now} of those rooms the user has one in."""
        rows = await self._pool.fetch(
            """SELECT room_id, membership FROM current_state
               WHERE room_id = ANY($1::text[]) AND type = 'm.room.member'
                 AND state_key = $2""",
            list(room_ids),
            user_id,
        )
        return {r["room_id"]: r["membership"] for r in rows if r["membership"]}
