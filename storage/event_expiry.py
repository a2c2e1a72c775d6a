"""Scheduled expiries of self-destructing events (MSC2228) and the censoring
of an expired event's stored JSON."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


class EventExpiryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def schedule(self, event_id: str, expiry_ts: int) -> None:
        await self._pool.execute(
            """INSERT INTO event_expiry (event_id, expiry_ts) VALUES ($1, $2)
               ON CONFLICT (event_id) DO NOTHING""",
            event_id,
            expiry_ts,
        )

    async def next_expiry(self) -> int | None:
        """The earliest scheduled expiry, if any."""
        return await self._pool.fetchval("SELECT min(expiry_ts) FROM event_expiry")

    async def due(self, now_ts: int, limit: int) -> list[str]:
        """Events whose expiry has come, earliest first."""
        rows = await self._pool.fetch(
            """SELECT event_id FROM event_expiry WHERE expiry_ts <= $1
               ORDER BY expiry_ts LIMIT $2""",
            now_ts,
            limit,
        )
        return [r["event_id"] for r in rows]

    async def censor(self, event_id: str, pruned: dict[str, Any]) -> None:
        """Replace the event's stored JSON by its redacted form, in one transaction
        with what was extracted from its content (search text, relation), and
        forget its expiry."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE events SET json = $2, rel_type = NULL, relates_to = NULL
                   WHERE event_id = $1""",
                event_id,
                json.dumps(pruned, ensure_ascii=False, separators=(",", ":")),
            )
            await conn.execute("DELETE FROM event_search WHERE event_id = $1", event_id)
            await conn.execute("DELETE FROM event_expiry WHERE event_id = $1", event_id)
