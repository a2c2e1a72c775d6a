"""Reads behind restricted joins: a user's membership in the rooms a join
rule allows, as this server sees them, and the members who could vouch for a
join."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs


@attrs.frozen
class AllowedRoomView:
    """One allowed room as this server sees it."""

    room_id: str
    # One of this server's users is joined: the room's state is live here.
    resident: bool
    # The joining user is joined, in the current state held here.
    user_joined: bool


class RestrictedJoinStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def allowed_rooms(
        self, room_ids: Sequence[str], user_id: str, server_name: str
    ) -> list[AllowedRoomView]:
        """How `user_id` stands in each of `room_ids`, in one query."""
        rows = await self._pool.fetch(
            """SELECT r.room_id,
                      EXISTS (SELECT 1 FROM current_state c
                              WHERE c.room_id = r.room_id AND c.type = 'm.room.member'
                                AND c.membership = 'join'
                                AND right(c.state_key, length($3) + 1) = ':' || $3) AS resident,
                      EXISTS (SELECT 1 FROM current_state c
                              WHERE c.room_id = r.room_id AND c.type = 'm.room.member'
                                AND c.state_key = $2 AND c.membership = 'join') AS user_joined
               FROM unnest($1::text[]) AS r(room_id)""",
            list(room_ids),
            user_id,
            server_name,
        )
        return [AllowedRoomView(r["room_id"], r["resident"], r["user_joined"]) for r in rows]

    async def joined_members(self, room_id: str) -> list[str]:
        """The room's joined members."""
        rows = await self._pool.fetch(
            """SELECT state_key FROM current_state
               WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'""",
            room_id,
        )
        return [r["state_key"] for r in rows]
