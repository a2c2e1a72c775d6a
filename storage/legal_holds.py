"""Legal holds on rooms and users (schema/0380_legal_holds.sql).

Every purge that removes content (retention, redaction purges, erasure) asks
here first, in SQL where it selects in bulk (`NOT_HELD_SQL`) or per event
(`is_held`), so a hold placed while a purge runs stops it at its next batch.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg
import attrs

from storage.database import now_ms

HoldKind = Literal["room", "user"]

# A condition for a query over `events` (aliased `e`): the event is neither in
# a held room nor sent by a held user.
NOT_HELD_SQL = """NOT EXISTS (
    SELECT 1 FROM legal_holds h
    WHERE (h.kind = 'room' AND h.target = e.room_id)
       OR (h.kind = 'user' AND h.target = e.sender)
)"""


@attrs.frozen
class LegalHold:
    kind: HoldKind
    target: str
    reason: str
    placed_by: str
    placed_ts: int

    def json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class LegalHoldStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def place(self, kind: HoldKind, target: str, reason: str, placed_by: str) -> bool:
        """Put `target` on hold; False if it already was (the first hold stays)."""
        placed = await self._pool.fetchval(
            """INSERT INTO legal_holds (kind, target, reason, placed_by, placed_ts)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1""",
            kind,
            target,
            reason,
            placed_by,
            now_ms(),
        )
        return placed is not None

    async def lift(self, kind: HoldKind, target: str) -> bool:
        """Lift the hold; False if there was none."""
        lifted = await self._pool.fetchval(
            "DELETE FROM legal_holds WHERE kind = $1 AND target = $2 RETURNING 1", kind, target
        )
        return lifted is not None

    async def get(self, kind: HoldKind, target: str) -> LegalHold | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM legal_holds WHERE kind = $1 AND target = $2", kind, target
        )
        return None if row is None else LegalHold(**dict(row))

    async def all(self) -> list[LegalHold]:
        rows = await self._pool.fetch("SELECT * FROM legal_holds ORDER BY placed_ts, target")
        return [LegalHold(**dict(r)) for r in rows]

    async def is_held(self, room_id: str, sender: str) -> bool:
        """Whether an event of `sender` in `room_id` is under a hold."""
        return bool(
            await self._pool.fetchval(
                """SELECT EXISTS (SELECT 1 FROM legal_holds
                   WHERE (kind = 'room' AND target = $1) OR (kind = 'user' AND target = $2))""",
                room_id,
                sender,
            )
        )

    async def user_held(self, user_id: str) -> bool:
        return await self.get("user", user_id) is not None
