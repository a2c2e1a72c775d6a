"""DAG reads that other servers ask for: auth chains, backfill walks, missing
events, and which servers are in a room. Each is one query."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from storage.events import AUTH_CHAIN_IDS


class FederationReadStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def server_in_room(self, room_id: str, server_name: str) -> bool:
        """Whether a user of `server_name` is joined to the room now."""
        return bool(
            await self._pool.fetchval(
                """SELECT 1 FROM current_state
                   WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'
                     AND substring(state_key FROM position(':' IN state_key) + 1) = $2
                   LIMIT 1""",
                room_id,
                server_name,
            )
        )

    async def auth_chain_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Every event reachable through auth edges from `event_ids`."""
        rows = await self._pool.fetch(AUTH_CHAIN_IDS, list(event_ids))
        return {r["id"] for r in rows}

    async def backfill_ids(self, room_id: str, from_ids: Iterable[str], limit: int) -> list[str]:
        """Up to `limit` events at and before `from_ids` in the DAG, newest first.

        The walk follows prev_events at most `limit` steps back, which is
        enough to find `limit` events and bounds the work of one request.
        """
        rows = await self._pool.fetch(
            """WITH RECURSIVE walk(event_id, hops) AS (
                   SELECT id, 0 FROM unnest($2::text[]) AS id
                   UNION
                   SELECT e.prev_event_id, w.hops + 1
                   FROM event_edges e JOIN walk w ON e.event_id = w.event_id
                   WHERE w.hops < $3
               )
               SELECT ev.event_id FROM events ev
               WHERE ev.event_id IN (SELECT event_id FROM walk)
                 AND ev.room_id = $1 AND NOT ev.outlier
               ORDER BY ev.depth DESC, ev.stream_ordering DESC
               LIMIT $3""",
            room_id,
            list(from_ids),
            limit,
        )
        return [r["event_id"] for r in rows]

    async def missing_event_ids(
        self,
        room_id: str,
        earliest: Iterable[str],
        latest: Iterable[str],
        limit: int,
        min_depth: int,
    ) -> list[str]:
        """Events before `latest` and after `earliest`, oldest first, at most `limit`.

        The walk goes back through prev_events from `latest` and stops at
        `earliest` (which the asker has) and below `min_depth`.
        """
        rows = await self._pool.fetch(
            """WITH RECURSIVE walk(event_id, hops) AS (
                   SELECT prev_event_id, 1 FROM event_edges WHERE event_id = ANY($3)
                   UNION
                   SELECT e.prev_event_id, w.hops + 1
                   FROM event_edges e JOIN walk w ON e.event_id = w.event_id
                   WHERE w.hops < $4 AND NOT (w.event_id = ANY($2))
               )
               SELECT event_id FROM (
                   SELECT ev.event_id, ev.depth, ev.stream_ordering FROM events ev
                   WHERE ev.event_id IN (SELECT event_id FROM walk)
                     AND NOT (ev.event_id = ANY($2)) AND NOT (ev.event_id = ANY($3))
                     AND ev.room_id = $1 AND ev.depth >= $5
                   ORDER BY ev.depth DESC, ev.stream_ordering DESC
                   LIMIT $4
               ) newest ORDER BY depth, stream_ordering""",
            room_id,
            list(earliest),
            list(latest),
            limit,
            min_depth,
        )
        return [r["event_id"] for r in rows]

    async def extremities(self, room_id: str) -> list[tuple[str, int]]:
        """(event id, depth) of the room's forward extremities, deepest first."""
        rows = await self._pool.fetch(
            """SELECT e.event_id, e.depth FROM forward_extremities f
               JOIN events e ON e.event_id = f.event_id
               WHERE f.room_id = $1 ORDER BY e.depth DESC, e.stream_ordering DESC""",
            room_id,
        )
        return [(r["event_id"], r["depth"]) for r in rows]

    async def rooms_shared_with_others(self, server_name: str) -> dict[str, list[str]]:
        """The rooms `server_name` has a joined member in, each with the other
        servers that have joined members there (one query)."""
        rows = await self._pool.fetch(
            """WITH joined AS (
                   SELECT DISTINCT room_id,
                          substring(state_key FROM position(':' IN state_key) + 1) AS server
                   FROM current_state
                   WHERE type = 'm.room.member' AND membership = 'join')
               SELECT room_id, array_agg(server ORDER BY server) AS servers
               FROM joined
               WHERE server <> $1
                 AND room_id IN (SELECT room_id FROM joined WHERE server = $1)
               GROUP BY room_id""",
            server_name,
        )
        return {r["room_id"]: list(r["servers"]) for r in rows}
