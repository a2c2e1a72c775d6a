"""Full-text search over the `event_search` table, and the reads that dress
search results (event context, current state of many rooms).

Matching uses PostgreSQL text search with the 'simple' configuration, the same
one the persist transaction indexes with, so that no word is stemmed away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
import attrs


@attrs.frozen
class SearchHit:
    event_id: str
    room_id: str
    rank: float
    stream_ordering: int


@attrs.frozen
class SearchScope:
    """Which indexed events a search may match.

    `tsquery` is `to_tsquery('simple', ...)` syntax. `rooms` maps each room
    to the last stream position the searcher may find in it (their leave), or
    None for no limit. `types` are the event types whose text may match; None
    for `senders` means any sender.
    """

    tsquery: str
    rooms: Mapping[str, int | None]
    types: Sequence[str]
    senders: Sequence[str] | None = None
    not_senders: Sequence[str] = ()


@attrs.frozen
class ContextIds:
    """Ids of the events around one event, nearest first on both sides."""

    before: list[str]
    after: list[str]
    # (depth, stream_ordering) of the outermost event on each side, or of the
    # event itself when a side is empty: where pagination would continue.
    start: tuple[int, int]
    end: tuple[int, int]


# Matches of a scope, excluding events that a redaction has stripped of the
# text that matched. $1 is the tsquery text; $2.. the scope.
_MATCHES = """
    FROM event_search s
    JOIN unnest($2::text[], $3::bigint[]) AS v(room_id, bound) ON v.room_id = s.room_id,
         to_tsquery('simple', $1) AS q
    WHERE s.vector @@ q
      AND (v.bound IS NULL OR s.stream_ordering <= v.bound)
      AND s.key = ANY($4::text[])
      AND ($5::text[] IS NULL OR s.sender = ANY($5::text[]))
      AND NOT (s.sender = ANY($6::text[]))
      AND NOT EXISTS (SELECT 1 FROM redactions d WHERE d.redacted_id = s.event_id)
"""

_BY_RANK = f"""
    SELECT * FROM (
        SELECT s.event_id, s.room_id, s.stream_ordering, ts_rank(s.vector, q) AS rank
        {_MATCHES}
    ) m
    WHERE $8::bigint IS NULL OR (m.rank, m.stream_ordering) < ($9::real, $8::bigint)
    ORDER BY m.rank DESC, m.stream_ordering DESC
    LIMIT $7
"""

_BY_RECENT = f"""
    SELECT s.event_id, s.room_id, s.stream_ordering, ts_rank(s.vector, q) AS rank
    {_MATCHES}
      AND ($8::bigint IS NULL OR s.stream_ordering < $8::bigint)
    ORDER BY s.stream_ordering DESC
    LIMIT $7
"""

_CONTEXT = """
    SELECT a.event_id AS anchor, a.depth AS a_depth, a.stream_ordering AS a_stream,
           x.event_id, x.depth, x.stream_ordering, x.before
    FROM events a
    LEFT JOIN LATERAL (
        (SELECT e.event_id, e.depth, e.stream_ordering, TRUE AS before
         FROM events e
         WHERE e.room_id = a.room_id AND NOT e.outlier AND e.rejected_reason IS NULL
           AND (e.depth, e.stream_ordering) < (a.depth, a.stream_ordering)
         ORDER BY e.depth DESC, e.stream_ordering DESC
         LIMIT $2)
        UNION ALL
        (SELECT e.event_id, e.depth, e.stream_ordering, FALSE AS before
         FROM events e
         WHERE e.room_id = a.room_id AND NOT e.outlier AND e.rejected_reason IS NULL
           AND (e.depth, e.stream_ordering) > (a.depth, a.stream_ordering)
         ORDER BY e.depth, e.stream_ordering
         LIMIT $3)
    ) x ON TRUE
    WHERE a.event_id = ANY($1::text[])
"""


class SearchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def _scope_args(self, scope: SearchScope) -> list[object]:
        return [
            scope.tsquery,
            list(scope.rooms),
            list(scope.rooms.values()),
            list(scope.types),
            list(scope.senders) if scope.senders is not None else None,
            list(scope.not_senders),
        ]

    async def search(
        self,
        scope: SearchScope,
        *,
        by_rank: bool,
        limit: int,
        after: tuple[float, int] | None,
    ) -> list[SearchHit]:
        """One page of matches, best (or newest) first, strictly after `after`.

        `after` is the (rank, stream ordering) of the last hit of the previous
        page; the rank is ignored when ordering by recency.
        """
        rows = await self._pool.fetch(
            _BY_RANK if by_rank else _BY_RECENT,
            *self._scope_args(scope),
            limit,
            after[1] if after else None,
            *([after[0] if after else None] if by_rank else []),
        )
        return [
            SearchHit(r["event_id"], r["room_id"], r["rank"], r["stream_ordering"]) for r in rows
        ]

    async def count(self, scope: SearchScope) -> int:
        """How many events of the scope match, on every page together."""
        return await self._pool.fetchval(f"SELECT count(*) {_MATCHES}", *self._scope_args(scope))

    async def context(
        self, event_ids: Sequence[str], before: int, after: int
    ) -> dict[str, ContextIds]:
        """The events around each of `event_ids` in topological order (one query)."""
        rows = await self._pool.fetch(_CONTEXT, list(event_ids), before, after)
        anchors: dict[str, tuple[int, int]] = {}
        around: dict[str, list[asyncpg.Record]] = {}
        for r in rows:
            anchors[r["anchor"]] = (r["a_depth"], r["a_stream"])
            if r["event_id"] is not None:
                around.setdefault(r["anchor"], []).append(r)
        found: dict[str, ContextIds] = {}
        for anchor, here in anchors.items():
            position = {
                r["event_id"]: (r["depth"], r["stream_ordering"]) for r in around.get(anchor, [])
            }
            ahead = sorted(
                (r["event_id"] for r in around.get(anchor, []) if r["before"]),
                key=position.__getitem__,
                reverse=True,
            )
            behind = sorted(
                (r["event_id"] for r in around.get(anchor, []) if not r["before"]),
                key=position.__getitem__,
            )
            found[anchor] = ContextIds(
                ahead,
                behind,
                position[ahead[-1]] if ahead else here,
                position[behind[-1]] if behind else here,
            )
        return found

    async def searchable_rooms(self, user_id: str) -> dict[str, int | None]:
        """The rooms a user is in or has left without forgetting them.

        {room id: None while joined, else the stream position of their leave
        or ban}: a search finds nothing sent after the searcher left.
        """
        rows = await self._pool.fetch(
            """SELECT c.room_id, c.membership, e.stream_ordering
               FROM current_state c JOIN events e ON e.event_id = c.event_id
               WHERE c.type = 'm.room.member' AND c.state_key = $1
                 AND c.membership IN ('join', 'leave', 'ban')
                 AND NOT EXISTS (SELECT 1 FROM room_forgotten f
                                 WHERE f.user_id = $1 AND f.room_id = c.room_id)""",
            user_id,
        )
        return {
            r["room_id"]: None if r["membership"] == "join" else r["stream_ordering"] for r in rows
        }

    async def current_state_ids(self, room_ids: Sequence[str]) -> dict[str, list[str]]:
        """The current state event ids of many rooms: {room id: [event id]}."""
        rows = await self._pool.fetch(
            "SELECT room_id, event_id FROM current_state WHERE room_id = ANY($1::text[])",
            list(room_ids),
        )
        found: dict[str, list[str]] = {r: [] for r in room_ids}
        for r in rows:
            found[r["room_id"]].append(r["event_id"])
        return found
