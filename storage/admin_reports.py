"""Event reports as administrators read them, with the room's name and the event."""

from __future__ import annotations

from typing import Any

import asyncpg

_REPORT = """
SELECT r.id, r.received_ts, r.room_id, r.event_id, r.user_id, r.reason, r.score,
       e.sender, e.json AS event_json,
       (SELECT (n.json::jsonb) -> 'content' ->> 'name' FROM current_state c
        JOIN events n ON n.event_id = c.event_id
        WHERE c.room_id = r.room_id AND c.type = 'm.room.name' AND c.state_key = '') AS name,
       (SELECT (a.json::jsonb) -> 'content' ->> 'alias' FROM current_state c
        JOIN events a ON a.event_id = c.event_id
        WHERE c.room_id = r.room_id AND c.type = 'm.room.canonical_alias'
          AND c.state_key = '') AS canonical_alias
FROM event_reports r LEFT JOIN events e ON e.event_id = r.event_id
"""


class AdminReportStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self,
        *,
        room_id: str | None,
        user_id: str | None,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        condition = """($1::text IS NULL OR r.room_id = $1)
                       AND ($2::text IS NULL OR r.user_id LIKE '%' || $2 || '%')"""
        order = "DESC" if backwards else "ASC"
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"{_REPORT} WHERE {condition} ORDER BY r.id {order} OFFSET $3 LIMIT $4",
                room_id,
                user_id,
                offset,
                limit,
            )
            total = await conn.fetchval(
                f"SELECT count(*) FROM event_reports r WHERE {condition}", room_id, user_id
            )
        return [dict(r) for r in rows], total

    async def get(self, report_id: int) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(f"{_REPORT} WHERE r.id = $1", report_id)
        return dict(row) if row else None

    async def delete(self, report_id: int) -> bool:
        result = await self._pool.execute("DELETE FROM event_reports WHERE id = $1", report_id)
        return result == "DELETE 1"
