"""The reads behind sliding sync's room lists and room data, and its
per-connection state.

The room list of a user with thousands of rooms costs a fixed number of
statements: their memberships (storage/sync.py), one for every room's
activity and type (`room_facts`), one for the user's m.direct and tags, one
for the children of the spaces a filter names. Room data reads are batched
over the rooms of a response the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg
import attrs

from storage.state import StateKey


@attrs.frozen
class RoomFacts:
    room_id: str
    # Stream position of the room's last event up to the cap (None: none seen).
    last_event: int | None
    # Stream position of the last event of a bumping type up to the cap.
    bump: int | None
    room_type: str | None
    encrypted: bool
    # The m.room.name of the room's current state, if any.
    name: str | None


@attrs.frozen
class RoomMoves:
    """A room's events in a stream range (outliers and rejected events aside)."""

    last_event: int | None
    bump: int | None
    # Whether a state event is among them.
    state: bool


@attrs.frozen
class StreamMoves:
    membership: bool
    forgotten: int
    rooms: dict[str, RoomMoves]


@attrs.frozen
class StoredPosition:
    connection_id: int
    token: str
    lists: dict[str, Any]
    rooms: dict[str, Any]


# Per room: the last event and the last bumping event at or before the cap
# (walking back along events_room_stream), and the create event's type and
# whether it is encrypted and its name, from current state.
_FACTS = """
SELECT r.room_id, last.stream_ordering AS last_event, bump.stream_ordering AS bump,
       ce.json::json -> 'content' ->> 'type' AS room_type,
       enc.event_id IS NOT NULL AS encrypted,
       ne.json::json -> 'content' ->> 'name' AS name
FROM unnest($1::text[], $2::bigint[]) AS r(room_id, cap)
LEFT JOIN LATERAL (
    SELECT stream_ordering FROM events
    WHERE room_id = r.room_id AND stream_ordering <= r.cap AND stream_ordering > 0
      AND NOT outlier AND rejected_reason IS NULL
    ORDER BY room_id DESC, stream_ordering DESC LIMIT 1
) last ON TRUE
LEFT JOIN LATERAL (
    SELECT stream_ordering FROM events
    WHERE room_id = r.room_id AND stream_ordering <= r.cap AND stream_ordering > 0
      AND NOT outlier AND rejected_reason IS NULL AND type = ANY($3::text[])
    ORDER BY room_id DESC, stream_ordering DESC LIMIT 1
) bump ON TRUE
LEFT JOIN current_state cc
    ON cc.room_id = r.room_id AND cc.type = 'm.room.create' AND cc.state_key = ''
LEFT JOIN events ce ON ce.event_id = cc.event_id
LEFT JOIN current_state enc
    ON enc.room_id = r.room_id AND enc.type = 'm.room.encryption' AND enc.state_key = ''
LEFT JOIN current_state nc
    ON nc.room_id = r.room_id AND nc.type = 'm.room.name' AND nc.state_key = ''
LEFT JOIN events ne ON ne.event_id = nc.event_id
"""

# Current state entries of the rooms matching any of the patterns: $2 every
# entry, $3 whole types, ($4, $5) exact pairs, $6 state keys of any type.
_CURRENT_STATE = """
SELECT room_id, type, state_key, event_id FROM current_state
WHERE room_id = ANY($1::text[])
  AND ($2::boolean OR type = ANY($3::text[]) OR state_key = ANY($6::text[])
       OR (type, state_key) IN (SELECT * FROM unnest($4::text[], $5::text[])))
"""


class SlidingSyncStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def room_facts(
        self, caps: Sequence[tuple[str, int]], bump_types: Collection[str]
    ) -> dict[str, RoomFacts]:
        """{room: its activity and kind}, looking at events up to each room's cap."""
        rows = await self._pool.fetch(
            _FACTS, [c[0] for c in caps], [c[1] for c in caps], list(bump_types)
        )
        return {
            r["room_id"]: RoomFacts(
                r["room_id"],
                r["last_event"],
                r["bump"],
                r["room_type"],
                r["encrypted"],
                r["name"],
            )
            for r in rows
        }

    async def direct_and_tags(self, user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The user's m.direct content and {room: its m.tag content}."""
        rows = await self._pool.fetch(
            """SELECT room_id, content FROM account_data
               WHERE user_id = $1 AND ((room_id = '' AND type = 'm.direct')
                                       OR (room_id <> '' AND type = 'm.tag'))""",
            user_id,
        )
        direct: dict[str, Any] = {}
        tags: dict[str, Any] = {}
        for r in rows:
            content = json.loads(r["content"])
            if not isinstance(content, dict):
                continue
            if r["room_id"] == "":
                direct = content
            else:
                tags[r["room_id"]] = content
        return direct, tags

    async def space_children(self, space_ids: Collection[str]) -> dict[str, frozenset[str]]:
        """{space: the rooms it names in m.space.child events that have a `via`}."""
        rows = await self._pool.fetch(
            """SELECT c.room_id, c.state_key FROM current_state c JOIN events e USING (event_id)
               WHERE c.room_id = ANY($1::text[]) AND c.type = 'm.space.child'
                 AND jsonb_typeof(e.json::jsonb -> 'content' -> 'via') = 'array'""",
            list(space_ids),
        )
        children: dict[str, set[str]] = {}
        for r in rows:
            children.setdefault(r["room_id"], set()).add(r["state_key"])
        return {space: frozenset(rooms) for space, rooms in children.items()}

    async def current_state(
        self,
        room_ids: Collection[str],
        *,
        everything: bool,
        types: Collection[str],
        pairs: Collection[StateKey],
        state_keys: Collection[str],
    ) -> dict[str, dict[StateKey, str]]:
        """{room: {(type, state key): event id}} of the current state entries
        matching any of the patterns."""
        pair_list = list(pairs)
        rows = await self._pool.fetch(
            _CURRENT_STATE,
            list(room_ids),
            everything,
            list(types),
            [p[0] for p in pair_list],
            [p[1] for p in pair_list],
            list(state_keys),
        )
        result: dict[str, dict[StateKey, str]] = {}
        for r in rows:
            result.setdefault(r["room_id"], {})[(r["type"], r["state_key"])] = r["event_id"]
        return result

    # Connections.

    async def new_connection(
        self,
        user_id: str,
        device_id: str,
        conn_id: str,
        *,
        max_age_ms: int,
        max_per_device: int,
    ) -> int:
        """A fresh connection, replacing the device's one of that conn_id; the
        server's connections unused for `max_age_ms`, and the device's beyond
        its `max_per_device` most recent, are pruned."""
        now = int(time.time() * 1000)
        # One statement (atomic on its own): one round trip per new connection.
        # The insert reads `replaced`, so the conn_id's old row is deleted
        # first (an unread data-modifying WITH runs after the main statement).
        return await self._pool.fetchval(
            """WITH expired AS (
                   DELETE FROM sliding_sync_connections WHERE last_used_ts < $5
               ), replaced AS (
                   DELETE FROM sliding_sync_connections
                   WHERE user_id = $1 AND device_id = $2
                     AND (conn_id = $3 OR id NOT IN (
                         SELECT id FROM sliding_sync_connections
                         WHERE user_id = $1 AND device_id = $2
                         ORDER BY last_used_ts DESC LIMIT $4))
                   RETURNING id
               )
               INSERT INTO sliding_sync_connections
                   (user_id, device_id, conn_id, created_ts, last_used_ts)
               SELECT $1, $2, $3, $6, $6 FROM (SELECT count(*) FROM replaced) AS done
               RETURNING id""",
            user_id,
            device_id,
            conn_id,
            max_per_device - 1,
            now - max_age_ms,
            now,
        )

    async def position(
        self, user_id: str, device_id: str, conn_id: str, pos: int
    ) -> StoredPosition | None:
        """What position `pos` of this device's connection `conn_id` remembers."""
        row = await self._pool.fetchrow(
            """SELECT p.connection_id, p.token, p.lists, p.rooms
               FROM sliding_sync_positions p
               JOIN sliding_sync_connections c ON c.id = p.connection_id
               WHERE p.pos = $1 AND c.user_id = $2 AND c.device_id = $3 AND c.conn_id = $4""",
            pos,
            user_id,
            device_id,
            conn_id,
        )
        if row is None:
            return None
        return StoredPosition(
            row["connection_id"], row["token"], json.loads(row["lists"]), json.loads(row["rooms"])
        )

    async def save_position(
        self,
        connection_id: int,
        *,
        used: int | None,
        token: str,
        lists: dict[str, Any],
        rooms: dict[str, Any],
    ) -> int | None:
        """Store a new position; positions before `used` (the one the client
        just sent, so it has the responses up to it) are dropped. None when
        the connection is gone (replaced by a newer one of the same conn_id)."""
        # One statement (atomic on its own): a round trip per response, not five.
        return await self._pool.fetchval(
            """WITH alive AS (
                   UPDATE sliding_sync_connections SET last_used_ts = $2
                   WHERE id = $1 RETURNING id
               ), done AS (
                   DELETE FROM sliding_sync_positions
                   WHERE connection_id IN (SELECT id FROM alive) AND pos < $3
               )
               INSERT INTO sliding_sync_positions (connection_id, token, lists, rooms)
               SELECT id, $4, $5::jsonb, $6::jsonb FROM alive
               RETURNING pos""",
            connection_id,
            int(time.time() * 1000),
            used if used is not None else 0,
            token,
            json.dumps(lists),
            json.dumps(rooms),
        )

    async def touch(self, connection_id: int, used: int) -> None:
        """The client used position `used` and got nothing new: the
        connection is alive, and the positions before `used` are done with."""
        await self._pool.execute(
            """WITH alive AS (
                   UPDATE sliding_sync_connections SET last_used_ts = $2
                   WHERE id = $1 RETURNING id
               )
               DELETE FROM sliding_sync_positions
               WHERE connection_id IN (SELECT id FROM alive) AND pos < $3""",
            connection_id,
            int(time.time() * 1000),
            used,
        )

    async def forgotten_count(self, user_id: str) -> int:
        """How many rooms the user has forgotten (forgetting has no stream
        position, so a change of this count is how a view notices one)."""
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM room_forgotten WHERE user_id = $1", user_id
            )
        )

    async def moves(
        self, user_id: str, after: int, upto: int, bump_types: Collection[str]
    ) -> StreamMoves:
        """What moved in (after, upto], in one walk over that stream range
        (short between two looks of one long poll): whether the user's
        membership did (out-of-band invites and knocks count: they take
        stream positions too), per room its last event, last bumping event
        and whether its state changed, and how many rooms the user has
        forgotten (forgetting has no stream position)."""
        rows = await self._pool.fetch(
            """SELECT NULL AS room_id, NULL::bigint AS last_event, NULL::bigint AS bump,
                      FALSE AS state, FALSE AS mine,
                      (SELECT count(*) FROM room_forgotten WHERE user_id = $1) AS forgotten
               UNION ALL
               SELECT room_id,
                      max(stream_ordering) FILTER (WHERE NOT outlier AND rejected_reason IS NULL),
                      max(stream_ordering) FILTER (
                          WHERE NOT outlier AND rejected_reason IS NULL
                            AND type = ANY($4::text[])),
                      coalesce(bool_or(state_key IS NOT NULL)
                          FILTER (WHERE NOT outlier AND rejected_reason IS NULL), FALSE),
                      bool_or(type = 'm.room.member' AND state_key = $1),
                      0
               FROM events WHERE stream_ordering > $2 AND stream_ordering <= $3
               GROUP BY room_id""",
            user_id,
            after,
            upto,
            list(bump_types),
        )
        rooms = {
            r["room_id"]: RoomMoves(r["last_event"], r["bump"], r["state"])
            for r in rows
            if r["room_id"] is not None
        }
        return StreamMoves(
            membership=any(r["mine"] for r in rows),
            forgotten=int(rows[0]["forgotten"]),
            rooms=rooms,
        )
