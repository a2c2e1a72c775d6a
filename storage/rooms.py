"""Room-level reads and writes: aliases, directory visibility, memberships."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from storage.state import StateMap


class AliasInUseError(Exception):
    """The alias points at a room already."""


class RoomStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def exists(self, room_id: str) -> bool:
        return bool(await self._pool.fetchval("SELECT 1 FROM rooms WHERE room_id = $1", room_id))

    async def create_alias(self, alias: str, room_id: str, creator: str) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)",
                alias,
                room_id,
                creator,
            )
        except asyncpg.UniqueViolationError:
            raise AliasInUseError(alias) from None

    async def room_for_alias(self, alias: str) -> str | None:
        return await self._pool.fetchval("SELECT room_id FROM room_aliases WHERE alias = $1", alias)

    async def set_public(self, room_id: str, public: bool) -> None:
        await self._pool.execute(
            "UPDATE rooms SET is_public = $2 WHERE room_id = $1", room_id, public
        )

    async def membership(self, room_id: str, user_id: str) -> tuple[str | None, str | None]:
        """(membership, event id) of the user's current membership in the room."""
        row = await self._pool.fetchrow(
            """SELECT membership, event_id FROM current_state
               WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2""",
            room_id,
            user_id,
        )
        return (row["membership"], row["event_id"]) if row else (None, None)

    async def rooms_for_user(self, user_id: str, membership: str = "join") -> list[str]:
        rows = await self._pool.fetch(
            """SELECT room_id FROM current_state
               WHERE type = 'm.room.member' AND state_key = $1 AND membership = $2""",
            user_id,
            membership,
        )
        return [r["room_id"] for r in rows]

    async def published(self, room_ids: Sequence[str]) -> set[str]:
        """Those of the rooms that are published in the room directory."""
        rows = await self._pool.fetch(
            "SELECT room_id FROM rooms WHERE room_id = ANY($1) AND is_public", list(room_ids)
        )
        return {r["room_id"] for r in rows}

    async def members(self, room_id: str) -> StateMap:
        """{(m.room.member, user id): event id} of the room's current state."""
        rows = await self._pool.fetch(
            """SELECT state_key, event_id FROM current_state
               WHERE room_id = $1 AND type = 'm.room.member'""",
            room_id,
        )
        return {("m.room.member", r["state_key"]): r["event_id"] for r in rows}

    async def forget(self, user_id: str, room_id: str) -> None:
        await self._pool.execute(
            "INSERT INTO room_forgotten (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user_id,
            room_id,
        )
