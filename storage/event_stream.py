"""The read behind the legacy /events stream: a few rooms' events in stream order."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

# Each room's first $4 events after $2 walk events_room_stream; the merge of
# those short lists gives the first $4 of all the rooms. Outliers, rejected
# and soft-failed events never appear in a stream.
_ROOM_EVENTS = """
SELECT e.event_id, e.stream_ordering
FROM unnest($1::text[]) AS r(room_id)
CROSS JOIN LATERAL (
    SELECT event_id, stream_ordering FROM events
    WHERE room_id = r.room_id AND stream_ordering > $2 AND stream_ordering <= $3
      AND NOT outlier AND rejected_reason IS NULL
    ORDER BY room_id, stream_ordering
    LIMIT $4
) e
ORDER BY e.stream_ordering
LIMIT $4
"""


class EventStreamStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def room_events(
        self, room_ids: Sequence[str], after: int, upto: int, limit: int
    ) -> list[tuple[str, int]]:
        """(event id, stream ordering) of the first `limit` events of these
        rooms in (after, upto], oldest first. One query."""
        if not room_ids or limit <= 0 or upto <= after:
            return []
        rows = await self._pool.fetch(_ROOM_EVENTS, list(room_ids), after, upto, limit)
        return [(r["event_id"], r["stream_ordering"]) for r in rows]
