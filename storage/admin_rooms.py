"""Rooms as administrators see them: summaries, blocks, extremities, purges."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage.database import now_ms
from storage.state import LOCK_ROOM

# order_by values of the room list: columns of the summary rows below.
ROOM_ORDER = frozenset(
    {
        "name",
        "canonical_alias",
        "joined_members",
        "joined_local_members",
        "version",
        "creator",
        "encryption",
        "federatable",
        "public",
        "join_rules",
        "guest_access",
        "history_visibility",
        "state_events",
    }
)

# One row per room with Synapse's room list fields, from current state.
# $1: a room id or NULL for all rooms; $2: ':' || the server name.
_SUMMARIES = """
WITH s AS (
    SELECT c.room_id, c.type, (e.json::jsonb) -> 'content' AS content, e.sender
    FROM current_state c JOIN events e ON e.event_id = c.event_id
    WHERE c.state_key = '' AND ($1::text IS NULL OR c.room_id = $1)
      AND c.type IN ('m.room.create', 'm.room.name', 'm.room.canonical_alias',
                     'm.room.join_rules', 'm.room.guest_access',
                     'm.room.history_visibility', 'm.room.encryption', 'm.room.topic',
                     'm.room.avatar')
)
SELECT r.room_id,
    max(s.content ->> 'name') FILTER (WHERE s.type = 'm.room.name') AS name,
    max(s.content ->> 'alias') FILTER (WHERE s.type = 'm.room.canonical_alias')
        AS canonical_alias,
    (SELECT count(*) FROM current_state m WHERE m.room_id = r.room_id
        AND m.type = 'm.room.member' AND m.membership = 'join') AS joined_members,
    (SELECT count(*) FROM current_state m WHERE m.room_id = r.room_id
        AND m.type = 'm.room.member' AND m.membership = 'join'
        AND m.state_key LIKE '%' || $2) AS joined_local_members,
    r.room_version AS version,
    r.creator,
    max(s.content ->> 'algorithm') FILTER (WHERE s.type = 'm.room.encryption') AS encryption,
    coalesce(bool_and((s.content ->> 'm.federate')::boolean)
        FILTER (WHERE s.type = 'm.room.create' AND s.content ? 'm.federate'), TRUE)
        AS federatable,
    r.is_public AS public,
    max(s.content ->> 'join_rule') FILTER (WHERE s.type = 'm.room.join_rules') AS join_rules,
    max(s.content ->> 'guest_access') FILTER (WHERE s.type = 'm.room.guest_access')
        AS guest_access,
    max(s.content ->> 'history_visibility')
        FILTER (WHERE s.type = 'm.room.history_visibility') AS history_visibility,
    (SELECT count(*) FROM current_state a WHERE a.room_id = r.room_id) AS state_events,
    max(s.content ->> 'type') FILTER (WHERE s.type = 'm.room.create') AS room_type,
    max(s.content ->> 'topic') FILTER (WHERE s.type = 'm.room.topic') AS topic,
    max(s.content ->> 'url') FILTER (WHERE s.type = 'm.room.avatar') AS avatar
FROM rooms r LEFT JOIN s ON s.room_id = r.room_id
WHERE $1::text IS NULL OR r.room_id = $1
GROUP BY r.room_id
"""

# Tables whose rows belong to a room but must outlive its purge (the purge
# task's own status among them).
_KEPT_ON_PURGE = frozenset({"blocked_rooms", "admin_audit_log", "admin_room_tasks"})
# Purged last, in this order: the tables others refer to.
_PURGED_LAST = ("state_groups", "events", "rooms")


class AdminRoomStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_rooms(
        self,
        *,
        server_name: str,
        search_term: str | None,
        order_by: str,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of room summaries, and how many rooms match the search."""
        assert order_by in ROOM_ORDER
        direction = "DESC" if backwards else "ASC"
        rows = await self._pool.fetch(
            f"""SELECT *, count(*) OVER () AS total FROM ({_SUMMARIES}) summary
                WHERE $3::text IS NULL OR name ILIKE '%' || $3 || '%'
                   OR canonical_alias ILIKE '%' || $3 || '%' OR room_id = $3
                ORDER BY {order_by} {direction} NULLS LAST, room_id {direction}
                OFFSET $4 LIMIT $5""",
            None,
            ":" + server_name,
            search_term,
            offset,
            limit,
        )
        total = rows[0]["total"] if rows else await self.count_rooms(search_term, server_name)
        return [{k: v for k, v in r.items() if k != "total"} for r in rows], total

    async def count_rooms(self, search_term: str | None, server_name: str) -> int:
        return await self._pool.fetchval(
            f"""SELECT count(*) FROM ({_SUMMARIES}) summary
                WHERE $3::text IS NULL OR name ILIKE '%' || $3 || '%'
                   OR canonical_alias ILIKE '%' || $3 || '%' OR room_id = $3""",
            None,
            ":" + server_name,
            search_term,
        )

    async def room_summary(self, room_id: str, server_name: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(_SUMMARIES, room_id, ":" + server_name)
        return dict(row) if row else None

    async def joined_local_devices(self, room_id: str, server_name: str) -> int:
        return await self._pool.fetchval(
            """SELECT count(*) FROM devices d JOIN current_state m
                 ON m.state_key = d.user_id AND m.type = 'm.room.member'
               WHERE m.room_id = $1 AND m.membership = 'join' AND m.state_key LIKE '%' || $2""",
            room_id,
            ":" + server_name,
        )

    async def members(
        self, room_id: str, memberships: list[str], *, server_name: str | None = None
    ) -> list[str]:
        """Members with one of `memberships`; only this server's if `server_name` is given."""
        rows = await self._pool.fetch(
            """SELECT state_key FROM current_state
               WHERE room_id = $1 AND type = 'm.room.member' AND membership = ANY($2)
                 AND ($3::text IS NULL OR state_key LIKE '%:' || $3) ORDER BY state_key""",
            room_id,
            memberships,
            server_name,
        )
        return [r["state_key"] for r in rows]

    async def block_of(self, room_id: str) -> str | None:
        """The admin who blocked the room, or None if it is not blocked."""
        return await self._pool.fetchval(
            "SELECT user_id FROM blocked_rooms WHERE room_id = $1", room_id
        )

    async def set_blocked(self, room_id: str, user_id: str, blocked: bool) -> None:
        if blocked:
            await self._pool.execute(
                """INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES ($1, $2, $3)
                   ON CONFLICT (room_id) DO NOTHING""",
                room_id,
                user_id,
                now_ms(),
            )
        else:
            await self._pool.execute("DELETE FROM blocked_rooms WHERE room_id = $1", room_id)

    async def aliases_of(self, room_id: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id
        )
        return [r["alias"] for r in rows]

    async def unpublish(self, room_id: str) -> list[str]:
        """Take the room out of the directory and drop its aliases; return them."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE rooms SET is_public = FALSE WHERE room_id = $1", room_id)
            rows = await conn.fetch(
                "DELETE FROM room_aliases WHERE room_id = $1 RETURNING alias", room_id
            )
        return sorted(r["alias"] for r in rows)

    async def forward_extremities(self, room_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """SELECT e.event_id, e.state_group, e.depth, e.origin_server_ts AS received_ts
               FROM forward_extremities f JOIN events e ON e.event_id = f.event_id
               WHERE f.room_id = $1 ORDER BY e.depth DESC, e.stream_ordering DESC""",
            room_id,
        )
        return [dict(r) for r in rows]

    async def delete_forward_extremities(self, room_id: str) -> int:
        """Keep only the newest extremity (new events then point at it alone)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_ROOM, room_id)
            result = await conn.execute(
                """DELETE FROM forward_extremities f WHERE f.room_id = $1
                   AND f.event_id <> (
                       SELECT e.event_id FROM forward_extremities x
                       JOIN events e ON e.event_id = x.event_id
                       WHERE x.room_id = $1
                       ORDER BY e.depth DESC, e.stream_ordering DESC LIMIT 1)""",
                room_id,
            )
        return int(result.split()[-1])

    async def _tables_with(self, conn: asyncpg.Connection, column: str) -> list[str]:
        rows = await conn.fetch(
            """SELECT c.table_name FROM information_schema.columns c
               JOIN information_schema.tables t
                 ON t.table_schema = c.table_schema AND t.table_name = c.table_name
               WHERE c.table_schema = current_schema() AND c.column_name = $1
                 AND t.table_type = 'BASE TABLE'
               ORDER BY c.table_name""",
            column,
        )
        return [r["table_name"] for r in rows if r["table_name"] not in _KEPT_ON_PURGE]

    async def purge_room(self, room_id: str) -> None:
        """Delete everything stored about the room, except that it is blocked.

        The tables are found from the schema (every table with a room_id, and
        those keyed by the ids of the room's events), so data that a later
        feature keeps per room is purged too.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_ROOM, room_id)
            by_room = await self._tables_with(conn, "room_id")
            await self._delete_event_rows(
                conn,
                "SELECT event_id FROM events WHERE room_id = $1",
                [room_id],
                by_room,
            )
            await conn.execute(
                """DELETE FROM state_group_entries
                   WHERE group_id IN (SELECT id FROM state_groups WHERE room_id = $1)""",
                room_id,
            )
            ordered = [t for t in by_room if t not in _PURGED_LAST] + [
                t for t in _PURGED_LAST if t in by_room
            ]
            for table in ordered:
                await conn.execute(f'DELETE FROM "{table}" WHERE room_id = $1', room_id)

    async def _delete_event_rows(
        self, conn: asyncpg.Connection, events_query: str, args: list[Any], skip: list[str]
    ) -> None:
        """Delete rows of tables keyed by event ids (edges, auth, redactions...)."""
        ids = [r["event_id"] for r in await conn.fetch(events_query, *args)]
        if not ids:
            return
        for column in ("event_id", "prev_event_id", "redacted_id", "redaction_id"):
            for table in await self._tables_with(conn, column):
                if table in skip or table == "events":
                    continue
                await conn.execute(f'DELETE FROM "{table}" WHERE "{column}" = ANY($1)', ids)

    async def purge_history(
        self, room_id: str, position: tuple[int, int], *, local_suffix: str | None
    ) -> int:
        """Delete the room's non-state events before `position` (depth, stream).

        Events that are a forward extremity stay (new events build on them).
        With `local_suffix` (':' + server name), this server's events stay.
        Returns how many events were deleted.
        """
        query = """SELECT e.event_id FROM events e
                   WHERE e.room_id = $1 AND e.state_key IS NULL
                     AND (e.depth, e.stream_ordering) < ($2::bigint, $3::bigint)
                     AND ($4::text IS NULL OR e.sender NOT LIKE '%' || $4)
                     AND NOT EXISTS (SELECT 1 FROM forward_extremities f
                                     WHERE f.event_id = e.event_id)"""
        args = [room_id, position[0], position[1], local_suffix]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_ROOM, room_id)
            ids = [r["event_id"] for r in await conn.fetch(query, *args)]
            await self._delete_event_rows(conn, query, args, [])
            await conn.execute("DELETE FROM events WHERE event_id = ANY($1)", ids)
        return len(ids)

    async def event_position(self, room_id: str, event_id: str) -> tuple[int, int] | None:
        row = await self._pool.fetchrow(
            "SELECT depth, stream_ordering FROM events WHERE room_id = $1 AND event_id = $2",
            room_id,
            event_id,
        )
        return (row["depth"], row["stream_ordering"]) if row else None

    async def position_at_ts(self, room_id: str, ts: int) -> tuple[int, int] | None:
        """Just after the room's last event received at or before `ts`."""
        row = await self._pool.fetchrow(
            """SELECT depth, stream_ordering FROM events
               WHERE room_id = $1 AND origin_server_ts <= $2
               ORDER BY stream_ordering DESC LIMIT 1""",
            room_id,
            ts,
        )
        return (row["depth"], row["stream_ordering"] + 1) if row else None

    async def notice_room(self, user_id: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT room_id FROM server_notice_rooms WHERE user_id = $1", user_id
        )

    async def set_notice_room(self, user_id: str, room_id: str) -> None:
        await self._pool.execute(
            """INSERT INTO server_notice_rooms (user_id, room_id) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE SET room_id = $2""",
            user_id,
            room_id,
        )
