"""Who types where, for a cluster (homeserver/cluster/typing.py).

One row per (room, user) that ever typed: the moment their typing ends
(NULL once stopped) and the typing stream position of their last change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg


class TypingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def set(self, room_id: str, user_id: str, until: datetime | None, position: int) -> None:
        await self._pool.execute(
            """INSERT INTO typing_users (room_id, user_id, until, stream_id)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (room_id, user_id)
               DO UPDATE SET until = EXCLUDED.until, stream_id = EXCLUDED.stream_id""",
            room_id,
            user_id,
            until,
            position,
        )

    async def changed(self, room_ids: Sequence[str], after: int, upto: int) -> dict[str, list[str]]:
        """The rooms of `room_ids` whose typing changed in (after, upto], each
        with who types there now (sorted)."""
        rows = await self._pool.fetch(
            """SELECT room_id,
                      coalesce(array_agg(user_id ORDER BY user_id)
                               FILTER (WHERE until > now()), '{}') AS typing
               FROM typing_users
               WHERE room_id IN (SELECT room_id FROM typing_users
                                 WHERE stream_id > $2 AND stream_id <= $3)
                 AND room_id = ANY($1::text[])
               GROUP BY room_id""",
            list(room_ids),
            after,
            upto,
        )
        return {r["room_id"]: list(r["typing"]) for r in rows}
