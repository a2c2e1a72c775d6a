"""Reports of events and rooms, kept for the server's administrators."""

from __future__ import annotations

import asyncpg

from storage.database import now_ms


class ReportStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def report_event(
        self, room_id: str, event_id: str, user_id: str, reason: str | None, score: int | None
    ) -> None:
        await self._pool.execute(
            """INSERT INTO event_reports (received_ts, room_id, event_id, user_id, reason, score)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            now_ms(),
            room_id,
            event_id,
            user_id,
            reason,
            score,
        )

    async def report_room(self, room_id: str, user_id: str, reason: str) -> None:
        await self._pool.execute(
            """INSERT INTO room_reports (received_ts, room_id, user_id, reason)
               VALUES ($1, $2, $3, $4)""",
            now_ms(),
            room_id,
            user_id,
            reason,
        )
