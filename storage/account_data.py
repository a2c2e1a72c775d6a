"""Per-user key/value data, global and per room, on its own stream."""

from __future__ import annotations

import asyncpg


class AccountDataStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, user_id: str, room_id: str, data_type: str, content_json: str) -> int:
        """Store the content (canonical JSON text); return its stream position."""
        return await self._pool.fetchval(
            """INSERT INTO account_data (user_id, room_id, type, content, stream_id)
               VALUES ($1, $2, $3, $4, nextval('account_data_stream'))
               ON CONFLICT (user_id, room_id, type)
               DO UPDATE SET content = EXCLUDED.content, stream_id = EXCLUDED.stream_id
               RETURNING stream_id""",
            user_id,
            room_id,
            data_type,
            content_json,
        )

    async def get(self, user_id: str, room_id: str, data_type: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3",
            user_id,
            room_id,
            data_type,
        )

    async def changed_between(
        self, user_id: str, after: int, upto: int
    ) -> list[tuple[str, str, str]]:
        """(room id or '', type, content) of what changed in (after, upto]."""
        rows = await self._pool.fetch(
            """SELECT room_id, type, content FROM account_data
               WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3
               ORDER BY stream_id""",
            user_id,
            after,
            upto,
        )
        return [(r["room_id"], r["type"], r["content"]) for r in rows]

    async def current_position(self) -> int:
        return await self._pool.fetchval(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM account_data_stream"
        )
