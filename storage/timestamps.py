"""A room's event closest to a time, for jump to date (`/timestamp_to_event`).

One statement, through the (room, origin_server_ts) index: the closest event
at or after (forwards) or at or before (backwards) the time, with whether it
sits next to a gap in our copy of the room's history, as Synapse judges it:
going forwards, an event with a prev event we lack (a backward extremity
lies behind it); going backwards, an event that is not a forward extremity
and that no event we have follows (the history after it is missing).
"""

from __future__ import annotations

import asyncpg
import attrs

_PICK = {
    True: "origin_server_ts >= $2 ORDER BY origin_server_ts, stream_ordering",
    False: "origin_server_ts <= $2 ORDER BY origin_server_ts DESC, stream_ordering DESC",
}

_CLOSEST = """
WITH hit AS (
    SELECT event_id, origin_server_ts FROM events
    WHERE room_id = $1 AND NOT outlier AND rejected_reason IS NULL AND {pick}
    LIMIT 1
)
SELECT h.event_id, h.origin_server_ts,
    EXISTS (
        SELECT 1 FROM event_edges g LEFT JOIN events p ON p.event_id = g.prev_event_id
        WHERE g.event_id = h.event_id AND (p.event_id IS NULL OR p.state_group IS NULL)
    ) AS backward_gap,
    NOT EXISTS (
        SELECT 1 FROM forward_extremities f WHERE f.room_id = $1 AND f.event_id = h.event_id
    ) AND NOT EXISTS (
        SELECT 1 FROM event_edges g JOIN events c ON c.event_id = g.event_id
        WHERE g.prev_event_id = h.event_id AND NOT c.outlier
    ) AS forward_gap
FROM hit h
"""


@attrs.frozen
class ClosestEvent:
    event_id: str
    origin_server_ts: int
    # Our history has a gap just before it (backward) or just after it (forward).
    backward_gap: bool
    forward_gap: bool


class TimestampStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def closest(self, room_id: str, ts: int, forwards: bool) -> ClosestEvent | None:
        row = await self._pool.fetchrow(_CLOSEST.format(pick=_PICK[forwards]), room_id, ts)
        if row is None:
            return None
        return ClosestEvent(
            row["event_id"], row["origin_server_ts"], row["backward_gap"], row["forward_gap"]
        )
