"""Read receipts: the latest one per (room, user, type, thread), on their own stream."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs

# Thread key of an unthreaded receipt.
UNTHREADED = ""


@attrs.frozen
class ReceiptTarget:
    """What a receipt needs to know about the event it acknowledges."""

    stream_ordering: int
    # (depth, stream_ordering): the order the fully-read marker moves forward in.
    topological: tuple[int, int]
    # The thread root the event is in ('main' if none), following relations
    # up to three levels (an annotation of a threaded reply is in the thread).
    thread: str
    # The thread a receipt on this event may name: as `thread`, except that a
    # thread root and the events related to it count as that thread too.
    receipt_thread: str


@attrs.frozen
class Receipt:
    room_id: str
    user_id: str
    receipt_type: str
    thread_id: str
    event_id: str
    ts: int


# Walks m.relates_to up from the event, at most three levels as Synapse does.
_TARGET = """
WITH RECURSIVE up AS (
    SELECT event_id, rel_type, relates_to, 0 AS level
    FROM events WHERE event_id = $1 AND room_id = $2
    UNION ALL
    SELECT e.event_id, e.rel_type, e.relates_to, up.level + 1
    FROM events e JOIN up ON e.event_id = up.relates_to
    WHERE up.level < 3
),
top AS (
    SELECT COALESCE(
        (SELECT relates_to FROM up WHERE relates_to IS NOT NULL
         ORDER BY level DESC LIMIT 1), $1) AS event_id
)
SELECT e.stream_ordering, e.depth,
       COALESCE((SELECT relates_to FROM up WHERE rel_type = 'm.thread' LIMIT 1), 'main')
           AS thread,
       CASE WHEN EXISTS (
           SELECT 1 FROM events c, top
           WHERE c.room_id = $2 AND c.rel_type = 'm.thread' AND c.relates_to = top.event_id
       ) THEN (SELECT event_id FROM top) ELSE 'main' END AS receipt_thread
FROM events e
WHERE e.event_id = $1 AND e.room_id = $2 AND NOT e.outlier AND e.rejected_reason IS NULL
"""


class ReceiptStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def target(self, room_id: str, event_id: str) -> ReceiptTarget | None:
        """The event in this room a receipt points at; None if the room has no such event."""
        row = await self._pool.fetchrow(_TARGET, event_id, room_id)
        if row is None:
            return None
        return ReceiptTarget(
            stream_ordering=row["stream_ordering"],
            topological=(row["depth"], row["stream_ordering"]),
            thread=row["thread"],
            receipt_thread=row["receipt_thread"],
        )

    async def topological(self, room_id: str, event_id: str) -> tuple[int, int] | None:
        row = await self._pool.fetchrow(
            "SELECT depth, stream_ordering FROM events WHERE event_id = $1 AND room_id = $2",
            event_id,
            room_id,
        )
        return (row["depth"], row["stream_ordering"]) if row else None

    async def put(self, receipt: Receipt, event_stream: int, stream_id: int) -> bool:
        """Store the receipt unless the user's receipt of that type and thread
        already points at this event or a later one; True if stored."""
        stored = await self._pool.fetchval(
            """INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id,
                                     event_stream, ts, stream_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE
               SET event_id = EXCLUDED.event_id, event_stream = EXCLUDED.event_stream,
                   ts = EXCLUDED.ts, stream_id = EXCLUDED.stream_id
               WHERE receipts.event_stream < EXCLUDED.event_stream
               RETURNING 1""",
            receipt.room_id,
            receipt.user_id,
            receipt.receipt_type,
            receipt.thread_id,
            receipt.event_id,
            event_stream,
            receipt.ts,
            stream_id,
        )
        return stored is not None

    async def visible_between(
        self, room_ids: Sequence[str], viewer: str, after: int, upto: int
    ) -> list[Receipt]:
        """Receipts of these rooms set in (after, upto] that `viewer` may see:
        everyone's public ones and their own private ones."""
        rows = await self._pool.fetch(
            """SELECT room_id, user_id, receipt_type, thread_id, event_id, ts
               FROM receipts
               WHERE room_id = ANY($1) AND stream_id > $2 AND stream_id <= $3
                 AND (receipt_type <> 'm.read.private' OR user_id = $4)
               ORDER BY stream_id""",
            list(room_ids),
            after,
            upto,
            viewer,
        )
        return [Receipt(**dict(r)) for r in rows]

    async def read_positions(
        self, user_id: str, room_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """{room: {thread key: stream_ordering}} of the user's m.read and
        m.read.private receipts (the later of the two per thread); the thread
        key is '' for unthreaded receipts."""
        rows = await self._pool.fetch(
            """SELECT room_id, thread_id, max(event_stream) AS position FROM receipts
               WHERE user_id = $1 AND room_id = ANY($2)
                 AND receipt_type IN ('m.read', 'm.read.private')
               GROUP BY room_id, thread_id""",
            user_id,
            list(room_ids),
        )
        positions: dict[str, dict[str, int]] = {}
        for r in rows:
            positions.setdefault(r["room_id"], {})[r["thread_id"]] = r["position"]
        return positions


async def receipts_between(
    pool: asyncpg.Pool, after: int, upto: int, limit: int, types: Sequence[str]
) -> list[tuple[int, Receipt]]:
    """Receipts of these types stored in (after, upto], oldest first, with
    their positions: what the followers of the receipts stream pass on."""
    rows = await pool.fetch(
        """SELECT stream_id, room_id, user_id, receipt_type, thread_id, event_id, ts
           FROM receipts
           WHERE stream_id > $1 AND stream_id <= $2 AND receipt_type = ANY($4::text[])
           ORDER BY stream_id LIMIT $3""",
        after,
        upto,
        limit,
        list(types),
    )
    return [
        (
            r["stream_id"],
            Receipt(
                r["room_id"],
                r["user_id"],
                r["receipt_type"],
                r["thread_id"],
                r["event_id"],
                r["ts"],
            ),
        )
        for r in rows
    ]
