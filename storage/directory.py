"""Aliases, the published room directory, and room summaries read from current state.

A room summary (what /publicRooms and /hierarchy show) is computed in SQL from
the room's current state, for a whole page of rooms in one query: the joined
member count from `current_state.membership`, and the content of the few
state events a summary needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg
import attrs

from storage.state import StateKey, StateMap

# The state events a summary reads (all with the empty state key).
SUMMARY_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.encryption",
)

# Every redaction algorithm keeps these contents' keys that a summary reads
# (join_rule, history_visibility, the create event's fields that matter here);
# the content of any other redacted summary event counts as empty.
_KEPT_BY_REDACTION = ["m.room.create", "m.room.join_rules", "m.room.history_visibility"]

_SUMMARIES = """
SELECT r.room_id, r.room_version,
    (SELECT count(*) FROM current_state m
     WHERE m.room_id = r.room_id AND m.type = 'm.room.member'
       AND m.membership = 'join') AS joined,
    (SELECT m.membership FROM current_state m
     WHERE m.room_id = r.room_id AND m.type = 'm.room.member'
       AND m.state_key = $1) AS membership,
    COALESCE(
        (SELECT jsonb_object_agg(c.type, CASE
             WHEN c.type <> ALL($2::text[])
                  AND EXISTS (SELECT 1 FROM redactions d WHERE d.redacted_id = c.event_id)
             THEN '{}'::jsonb
             ELSE e.json::jsonb -> 'content' END)
         FROM current_state c JOIN events e ON e.event_id = c.event_id
         WHERE c.room_id = r.room_id AND c.state_key = '' AND c.type = ANY($3::text[])),
        '{}'::jsonb) AS state
FROM rooms r
"""


def _text(path: str) -> str:
    """SQL for a string field of a summary's state, NULL if it is not a string."""
    event_type, key = path.split("/")
    value = f"s.state -> '{event_type}' -> '{key}'"
    return f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' END)"


_SEARCHED = [_text("m.room.name/name"), _text("m.room.topic/topic")]
_ALIAS = _text("m.room.canonical_alias/alias")
_ROOM_TYPE = _text("m.room.create/type")


@attrs.frozen
class RoomSummaryRow:
    room_id: str
    room_version: str
    joined_members: int
    # The requesting user's membership, when one was named.
    membership: str | None
    # {event type: content} of the summary's state events.
    state: dict[str, Any]


@attrs.frozen
class DirectoryFilter:
    """What /publicRooms narrows the directory to."""

    search_term: str | None = None
    # None: every room; otherwise these room types, None in the list for untyped rooms.
    room_types: tuple[str | None, ...] | None = None
    # The rooms an appservice published for one of its networks (appservice
    # id, network id) instead of the main list; or the main list and every
    # network's together.
    network: tuple[str, str] | None = None
    all_networks: bool = False


@attrs.frozen
class DirectoryCursor:
    """A position in the directory order (joined members desc, room id asc)."""

    joined_members: int
    room_id: str
    # True: rooms after the position; False: rooms before it.
    forwards: bool


def _row(r: asyncpg.Record) -> RoomSummaryRow:
    return RoomSummaryRow(
        r["room_id"], r["room_version"], r["joined"], r["membership"], json.loads(r["state"])
    )


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class DirectoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # Aliases

    async def alias(self, alias: str) -> tuple[str, str] | None:
        """(room id, creator) of a local alias."""
        row = await self._pool.fetchrow(
            "SELECT room_id, creator FROM room_aliases WHERE alias = $1", alias
        )
        return (row["room_id"], row["creator"]) if row else None

    async def delete_alias(self, alias: str) -> None:
        await self._pool.execute("DELETE FROM room_aliases WHERE alias = $1", alias)

    async def aliases_of(self, room_id: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id
        )
        return [r["alias"] for r in rows]

    async def move_aliases(self, old_room_id: str, new_room_id: str) -> list[str]:
        """Point every local alias of one room at another; returns the aliases moved."""
        rows = await self._pool.fetch(
            "UPDATE room_aliases SET room_id = $2 WHERE room_id = $1 RETURNING alias",
            old_room_id,
            new_room_id,
        )
        return sorted(r["alias"] for r in rows)

    async def joined_servers(self, room_id: str) -> list[str]:
        """The servers with a joined member in the room (from the user ids' server part)."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT substring(state_key FROM position(':' IN state_key) + 1) AS server
               FROM current_state
               WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'
               ORDER BY server""",
            room_id,
        )
        return [r["server"] for r in rows]

    # Membership and state reads the directory needs

    async def members_with(self, room_id: str, membership: str) -> list[tuple[str, str]]:
        """(user id, member event id) of the room's members with this membership."""
        rows = await self._pool.fetch(
            """SELECT state_key, event_id FROM current_state
               WHERE room_id = $1 AND type = 'm.room.member' AND membership = $2
               ORDER BY state_key""",
            room_id,
            membership,
        )
        return [(r["state_key"], r["event_id"]) for r in rows]

    async def state_ids(self, room_id: str, keys: Iterable[StateKey]) -> StateMap:
        """The event ids of some keys of the room's current state (one query)."""
        keys = list(keys)
        rows = await self._pool.fetch(
            """SELECT c.type, c.state_key, c.event_id FROM current_state c
               JOIN unnest($2::text[], $3::text[]) AS w(t, k)
                 ON c.type = w.t AND c.state_key = w.k
               WHERE c.room_id = $1""",
            room_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows}

    async def state_of_type(
        self, room_ids: Iterable[str], event_type: str
    ) -> list[tuple[str, str]]:
        """(room id, event id) of the rooms' current state events of one type."""
        rows = await self._pool.fetch(
            """SELECT room_id, event_id FROM current_state
               WHERE room_id = ANY($1) AND type = $2 ORDER BY room_id, state_key""",
            list(room_ids),
            event_type,
        )
        return [(r["room_id"], r["event_id"]) for r in rows]

    async def latest_event_id(self, room_id: str) -> str | None:
        """The room's newest event by stream order: an upgraded room's last event."""
        return await self._pool.fetchval(
            """SELECT event_id FROM events WHERE room_id = $1
               ORDER BY stream_ordering DESC LIMIT 1""",
            room_id,
        )

    # The published room directory

    async def is_public(self, room_id: str) -> bool | None:
        """Whether the room is published; None for unknown rooms."""
        return await self._pool.fetchval("SELECT is_public FROM rooms WHERE room_id = $1", room_id)

    async def set_public(self, room_id: str, public: bool) -> None:
        await self._pool.execute(
            "UPDATE rooms SET is_public = $2 WHERE room_id = $1", room_id, public
        )

    async def summaries(
        self, room_ids: Iterable[str], user_id: str | None = None
    ) -> dict[str, RoomSummaryRow]:
        """Summaries of the known rooms among `room_ids` (one query)."""
        rows = await self._pool.fetch(
            _SUMMARIES + "WHERE r.room_id = ANY($4)",
            user_id,
            _KEPT_BY_REDACTION,
            list(SUMMARY_TYPES),
            list(room_ids),
        )
        return {r["room_id"]: _row(r) for r in rows}

    def _filtered(self, where: DirectoryFilter) -> tuple[str, list[Any]]:
        """The published rooms' summaries narrowed by `where`: SQL and its arguments."""
        args: list[Any] = [None, _KEPT_BY_REDACTION, list(SUMMARY_TYPES)]
        clauses = []
        if where.search_term:
            args.append(_like(where.search_term))
            n = len(args)
            clauses.append("(" + " OR ".join(f"{f} ILIKE ${n}" for f in (*_SEARCHED, _ALIAS)) + ")")
        if where.room_types is not None:
            args.append([t for t in where.room_types if t is not None])
            n = len(args)
            typed = f"{_ROOM_TYPE} = ANY(${n}::text[])"
            if None in where.room_types:
                typed = f"({typed} OR {_ROOM_TYPE} IS NULL)"
            clauses.append(typed)
        listed = "r.is_public"
        networks = "SELECT 1 FROM appservice_room_list a WHERE a.room_id = r.room_id"
        if where.network is not None:
            args += list(where.network)
            n = len(args)
            listed = f"EXISTS ({networks} AND a.appservice_id = ${n - 1} AND a.network_id = ${n})"
        elif where.all_networks:
            listed = f"(r.is_public OR EXISTS ({networks}))"
        sql = f"WITH s AS ({_SUMMARIES} WHERE {listed}) SELECT * FROM s"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return sql, args

    async def public_rooms(
        self, where: DirectoryFilter, cursor: DirectoryCursor | None, limit: int
    ) -> list[RoomSummaryRow]:
        """Up to `limit` published rooms from `cursor`, in directory order."""
        sql, args = self._filtered(where)
        forwards = cursor is None or cursor.forwards
        if cursor is not None:
            args += [cursor.joined_members, cursor.room_id]
            j, r = len(args) - 1, len(args)
            compare = "<" if forwards else ">"
            other = ">" if forwards else "<"
            sql = (
                f"SELECT * FROM ({sql}) p WHERE (p.joined {compare} ${j} "
                f"OR (p.joined = ${j} AND p.room_id {other} ${r}))"
            )
        else:
            sql = f"SELECT * FROM ({sql}) p"
        args.append(limit)
        order = "p.joined DESC, p.room_id" if forwards else "p.joined, p.room_id DESC"
        rows = await self._pool.fetch(f"{sql} ORDER BY {order} LIMIT ${len(args)}", *args)
        found = [_row(r) for r in rows]
        return found if forwards else found[::-1]

    async def count_public_rooms(self, where: DirectoryFilter) -> int:
        sql, args = self._filtered(where)
        return await self._pool.fetchval(f"SELECT count(*) FROM ({sql}) p", *args)
