"""Sync filters uploaded by clients."""

from __future__ import annotations

import asyncpg


class FilterStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, user_id: str, filter_json: str) -> int:
        """Store a filter; ids count up per user from 0, as clients are used to."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialise concurrent uploads by one user so ids stay unique.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", user_id)
            return await conn.fetchval(
                """INSERT INTO filters (user_id, filter_id, filter_json)
                   SELECT $1, COALESCE(MAX(filter_id) + 1, 0), $2
                   FROM filters WHERE user_id = $1
                   RETURNING filter_id""",
                user_id,
                filter_json,
            )

    async def get(self, user_id: str, filter_id: int) -> str | None:
        return await self._pool.fetchval(
            "SELECT filter_json FROM filters WHERE user_id = $1 AND filter_id = $2",
            user_id,
            filter_id,
        )
