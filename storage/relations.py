"""Event relationships: children of events, by the `rel_type` and `relates_to`
columns that the persist transaction extracts from content["m.relates_to"].

A child counts only while it is accepted and not redacted: a redaction strips
`m.relates_to`, so the relation is gone for clients too.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs

# Topological position of an event: (depth, stream_ordering), compared as a pair.
Position = tuple[int, int]

# A child that still relates: accepted, in the room's timeline, not redacted.
_LIVE = """c.rejected_reason IS NULL AND NOT c.outlier
    AND NOT EXISTS (SELECT 1 FROM redactions d WHERE d.redacted_id = c.event_id)"""


@attrs.frozen
class Parent:
    """An event whose children are aggregated, with what validity rules compare."""

    event_id: str
    room_id: str
    sender: str
    type: str


@attrs.frozen
class ThreadSummary:
    count: int
    latest_event_id: str
    # Whether the user asked about sent one of the thread's replies.
    user_replied: bool


@attrs.frozen
class ChildPage:
    event_ids: list[str]
    # Position of the last child returned, when the page was full.
    last: Position | None


class RelationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def children(
        self,
        room_id: str,
        parent_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        start: Position | None,
        stop: Position | None,
        forwards: bool,
        limit: int,
        max_level: int,
    ) -> ChildPage:
        """One page of the children of `parent_id` (and their children, down to
        `max_level` relations away), in topological order, read from the cut
        `start` towards the cut `stop`.

        A cut P lies just after the event at position P: reading forwards
        takes events > start and <= stop; backwards, events <= start and > stop.
        """
        args: list[object] = [parent_id, room_id, max_level, rel_type, event_type, limit + 1]
        order = "ASC" if forwards else "DESC"
        lower, upper = (">", "<=") if forwards else ("<=", ">")
        bounds = []
        for position, op in ((start, lower), (stop, upper)):
            if position is not None:
                args.extend(position)
                bounds.append(
                    f"AND (c.depth, c.stream_ordering) {op} (${len(args) - 1}, ${len(args)})"
                )
        rows = await self._pool.fetch(
            f"""WITH RECURSIVE related(event_id, level) AS (
                    SELECT c.event_id, 1 FROM events c
                    WHERE c.relates_to = $1 AND c.room_id = $2 AND {_LIVE}
                    UNION
                    SELECT c.event_id, r.level + 1
                    FROM related r JOIN events c ON c.relates_to = r.event_id
                    WHERE r.level < $3 AND c.room_id = $2 AND {_LIVE}
                )
                SELECT c.event_id, c.depth, c.stream_ordering
                FROM related JOIN events c USING (event_id)
                WHERE ($4::text IS NULL OR c.rel_type = $4)
                  AND ($5::text IS NULL OR c.type = $5)
                  {" ".join(bounds)}
                ORDER BY c.depth {order}, c.stream_ordering {order}
                LIMIT $6""",
            *args,
        )
        full = len(rows) > limit
        rows = rows[:limit]
        last = (rows[-1]["depth"], rows[-1]["stream_ordering"]) if full and rows else None
        return ChildPage([r["event_id"] for r in rows], last)

    async def with_children(self, event_ids: Sequence[str]) -> set[str]:
        """Those of `event_ids` that some event relates to (live or not): a
        cheap index look-up that spares the aggregation queries for the many
        events that have no relations at all."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT relates_to FROM events
               WHERE relates_to = ANY($1::text[])""",
            list(event_ids),
        )
        return {r["relates_to"] for r in rows}

    async def thread_summaries(
        self, parents: Sequence[Parent], user_id: str | None, ignored: Sequence[str]
    ) -> dict[str, ThreadSummary]:
        """{root id: summary} for the parents that have live m.thread replies
        from senders other than `ignored` (whose replies are not counted)."""
        rows = await self._pool.fetch(
            f"""SELECT c.relates_to AS root, count(*) AS count,
                       coalesce(bool_or(c.sender = $3), FALSE) AS replied,
                       (array_agg(c.event_id
                                  ORDER BY c.depth DESC, c.stream_ordering DESC))[1] AS latest
                FROM unnest($1::text[], $2::text[]) AS p(id, room)
                JOIN events c ON c.relates_to = p.id AND c.room_id = p.room
                WHERE c.rel_type = 'm.thread' AND {_LIVE}
                  AND NOT (c.sender = ANY($4::text[]))
                GROUP BY c.relates_to""",
            [p.event_id for p in parents],
            [p.room_id for p in parents],
            user_id,
            list(ignored),
        )
        return {r["root"]: ThreadSummary(r["count"], r["latest"], r["replied"]) for r in rows}

    async def latest_edits(self, parents: Sequence[Parent]) -> dict[str, str]:
        """{original id: id of its most recent valid m.replace}.

        Valid: same room, sender and type as the original, not a state event,
        with an m.new_content object (unless encrypted, where it is hidden).
        Most recent: by origin_server_ts, then the largest event id.
        """
        rows = await self._pool.fetch(
            f"""SELECT DISTINCT ON (c.relates_to) c.relates_to, c.event_id
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                     AS p(id, room, sender, type)
                JOIN events c ON c.relates_to = p.id AND c.room_id = p.room
                     AND c.sender = p.sender AND c.type = p.type
                WHERE c.rel_type = 'm.replace' AND c.state_key IS NULL AND {_LIVE}
                  AND (c.type = 'm.room.encrypted'
                       OR jsonb_typeof(c.json::jsonb -> 'content' -> 'm.new_content')
                          = 'object')
                ORDER BY c.relates_to, c.origin_server_ts DESC, c.event_id DESC""",
            [p.event_id for p in parents],
            [p.room_id for p in parents],
            [p.sender for p in parents],
            [p.type for p in parents],
        )
        return {r["relates_to"]: r["event_id"] for r in rows}

    async def references(self, parents: Sequence[Parent]) -> dict[str, list[str]]:
        """{parent id: ids of its live m.reference children, oldest first}."""
        rows = await self._pool.fetch(
            f"""SELECT c.relates_to, c.event_id
                FROM unnest($1::text[], $2::text[]) AS p(id, room)
                JOIN events c ON c.relates_to = p.id AND c.room_id = p.room
                WHERE c.rel_type = 'm.reference' AND {_LIVE}
                ORDER BY c.depth, c.stream_ordering""",
            [p.event_id for p in parents],
            [p.room_id for p in parents],
        )
        result: dict[str, list[str]] = {}
        for r in rows:
            result.setdefault(r["relates_to"], []).append(r["event_id"])
        return result

    async def thread_roots(
        self,
        room_id: str,
        *,
        participant: str | None,
        before: Position | None,
        limit: int,
    ) -> tuple[list[str], Position | None]:
        """Roots of the room's threads, most recent activity first, whose latest
        live reply is at or before `before`; with `participant`, only threads
        that user started or replied to. Returns the ids and, when more may
        follow, the position of the last root's latest reply."""
        rows = await self._pool.fetch(
            f"""SELECT c.relates_to AS root,
                       max(ARRAY[c.depth, c.stream_ordering]) AS latest
                FROM events c
                JOIN events p ON p.event_id = c.relates_to AND p.room_id = c.room_id
                WHERE c.room_id = $1 AND c.rel_type = 'm.thread' AND {_LIVE}
                  AND p.rejected_reason IS NULL AND NOT p.outlier
                GROUP BY c.relates_to, p.sender
                HAVING ($2::text IS NULL OR p.sender = $2 OR bool_or(c.sender = $2))
                   AND ($3::bigint[] IS NULL OR max(ARRAY[c.depth, c.stream_ordering]) <= $3)
                ORDER BY latest DESC
                LIMIT $4""",
            room_id,
            participant,
            list(before) if before is not None else None,
            limit + 1,
        )
        full = len(rows) > limit
        rows = rows[:limit]
        last = (rows[-1]["latest"][0], rows[-1]["latest"][1]) if full and rows else None
        return [r["root"] for r in rows], last
