"""Reads of a room's timeline in topological order, for /messages, /context
and /members, and the membership facts that history visibility needs.

Positions are (depth, stream_ordering) pairs: a position names the gap just
after the event with that key, so events "before" it have keys <= it and
events "after" it have keys > it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg
import attrs

Position = tuple[int, int]


@attrs.frozen
class TimelineQuery:
    """Which events a page may hold, besides the position bounds.

    `types` and `not_types` are globs where '*' matches any run of characters;
    None means "no constraint" and an empty list matches nothing.
    """

    types: Sequence[str] | None = None
    not_types: Sequence[str] = ()
    senders: Sequence[str] | None = None
    not_senders: Sequence[str] = ()
    contains_url: bool | None = None


@attrs.frozen
class TimelineRow:
    event_id: str
    position: Position


def _like(glob: str) -> str:
    """A LIKE pattern (escape character backslash) matching what the glob matches."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


# $1 room, $2/$3 the from bound, $4/$5 the optional far bound, $6 limit,
# $7.. the TimelineQuery. Outliers and rejected events are never in a timeline.
_PAGE = """
    SELECT event_id, depth, stream_ordering FROM events
    WHERE room_id = $1 AND NOT outlier AND rejected_reason IS NULL
      AND (depth, stream_ordering) {from_op} ($2::bigint, $3::bigint)
      AND ($4::bigint IS NULL OR (depth, stream_ordering) {to_op} ($4::bigint, $5::bigint))
      AND ($7::text[] IS NULL OR type LIKE ANY($7::text[]))
      AND NOT (type LIKE ANY($8::text[]))
      AND ($9::text[] IS NULL OR sender = ANY($9::text[]))
      AND NOT (sender = ANY($10::text[]))
      AND ($11::boolean IS NULL OR $11::boolean = (
          jsonb_typeof(json::jsonb -> 'content' -> 'url') IS NOT DISTINCT FROM 'string'))
    ORDER BY depth {order}, stream_ordering {order}
    LIMIT $6
"""
_BACKWARDS = _PAGE.format(from_op="<=", to_op=">", order="DESC")
_FORWARDS = _PAGE.format(from_op=">", to_op="<=", order="ASC")


class HistoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self,
        room_id: str,
        start: Position,
        *,
        backwards: bool,
        limit: int,
        bound: Position | None = None,
        query: TimelineQuery = TimelineQuery(),
    ) -> list[TimelineRow]:
        """Up to `limit` events from `start` in one direction, nearest first.

        Backwards takes keys <= start (and > bound); forwards keys > start
        (and <= bound).
        """
        rows = await self._pool.fetch(
            _BACKWARDS if backwards else _FORWARDS,
            room_id,
            start[0],
            start[1],
            bound[0] if bound else None,
            bound[1] if bound else None,
            limit,
            [_like(t) for t in query.types] if query.types is not None else None,
            [_like(t) for t in query.not_types],
            list(query.senders) if query.senders is not None else None,
            list(query.not_senders),
            query.contains_url,
        )
        return [TimelineRow(r["event_id"], (r["depth"], r["stream_ordering"])) for r in rows]

    async def room_end(self, room_id: str) -> Position | None:
        """The key of the room's last event in topological order; None for unknown rooms."""
        row = await self._pool.fetchrow(
            """SELECT depth, stream_ordering FROM events
               WHERE room_id = $1 AND NOT outlier
               ORDER BY depth DESC, stream_ordering DESC LIMIT 1""",
            room_id,
        )
        return (row["depth"], row["stream_ordering"]) if row else None

    async def backward_extremities(
        self, room_id: str, *, low: int | None, high: int, limit: int
    ) -> list[str]:
        """Prev events this server lacks (unknown, or known only as outliers,
        without their place in the DAG) of the room's timeline events with
        depth in [low, high] (no lower bound for None), those of the newest
        events first: where older history must come from other servers.

        Read through the room's topological index over the depth range a
        page covered, so the cost follows the page, not the room.
        """
        rows = await self._pool.fetch(
            """SELECT g.prev_event_id, max(e.depth) AS depth
               FROM events e
               JOIN event_edges g ON g.event_id = e.event_id
               LEFT JOIN events p ON p.event_id = g.prev_event_id
               WHERE e.room_id = $1 AND NOT e.outlier AND e.rejected_reason IS NULL
                 AND ($2::bigint IS NULL OR e.depth >= $2) AND e.depth <= $3
                 AND (p.event_id IS NULL OR p.state_group IS NULL)
               GROUP BY g.prev_event_id
               ORDER BY depth DESC, g.prev_event_id
               LIMIT $4""",
            room_id,
            low,
            high,
            limit,
        )
        return [r["prev_event_id"] for r in rows]

    async def depth_at_stream(self, room_id: str, stream: int) -> int:
        """Depth of the room's newest event at or before a stream position (0 if none).

        This turns a stream position (a /sync prev_batch) into a topological one.
        """
        depth = await self._pool.fetchval(
            """SELECT depth FROM events
               WHERE room_id = $1 AND NOT outlier AND stream_ordering <= $2
               ORDER BY stream_ordering DESC LIMIT 1""",
            room_id,
            stream,
        )
        return depth or 0

    async def event_at(self, room_id: str, position: Position) -> str | None:
        """The last event with a state snapshot at or before `position`."""
        return await self._pool.fetchval(
            """SELECT event_id FROM events
               WHERE room_id = $1 AND NOT outlier AND state_group IS NOT NULL
                 AND rejected_reason IS NULL
                 AND (depth, stream_ordering) <= ($2::bigint, $3::bigint)
               ORDER BY depth DESC, stream_ordering DESC LIMIT 1""",
            room_id,
            position[0],
            position[1],
        )

    async def last_joins(self, user_id: str, room_ids: Iterable[str]) -> dict[str, Position]:
        """{room: key of the user's most recent join event} for the rooms they ever joined."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT ON (room_id) room_id, depth, stream_ordering FROM events
               WHERE room_id = ANY($1::text[]) AND type = 'm.room.member' AND state_key = $2
                 AND NOT outlier AND rejected_reason IS NULL
                 AND json::jsonb -> 'content' ->> 'membership' = 'join'
               ORDER BY room_id, depth DESC, stream_ordering DESC""",
            list(set(room_ids)),
            user_id,
        )
        return {r["room_id"]: (r["depth"], r["stream_ordering"]) for r in rows}

    async def has_forgotten(self, user_id: str, room_id: str) -> bool:
        return bool(
            await self._pool.fetchval(
                "SELECT 1 FROM room_forgotten WHERE user_id = $1 AND room_id = $2",
                user_id,
                room_id,
            )
        )
