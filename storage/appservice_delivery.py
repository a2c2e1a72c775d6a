"""What the application service delivery reads and remembers: the streams it
follows (events, public read receipts, to-device messages, device list
changes), what a room offers to be interesting (its members and aliases), and
per appservice its positions and the one transaction in flight."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import asyncpg
import attrs

from storage.receipts import Receipt, receipts_between


@attrs.frozen
class StreamEvent:
    """The columns of an event that decide who is interested in it."""

    stream_ordering: int
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str


@attrs.frozen
class RoomInterestRow:
    """Everything in a room an appservice namespace can match: every user with
    any membership, and its canonical and published aliases."""

    members: frozenset[str]
    aliases: frozenset[str]


@attrs.frozen
class DeviceMessage:
    stream_id: int
    user_id: str
    device_id: str
    sender: str
    type: str
    content: dict[str, Any]


@attrs.frozen
class PendingTransaction:
    """A transaction stored before it is sent: retried as is until acknowledged."""

    txn_id: int
    body: dict[str, Any]
    positions: dict[str, int]
    event_count: int


@attrs.frozen
class DeliveryStatus:
    """One appservice's queue, for the admin API and metrics."""

    positions: dict[str, int]
    last_success_ts: int | None
    pending_txn_id: int | None
    pending_events: int


@attrs.frozen
class KeyCountRows:
    # {user: {device: {algorithm: count}}} and {user: {device: [algorithm]}}.
    one_time: dict[str, dict[str, dict[str, int]]]
    unused_fallback: dict[str, dict[str, list[str]]]


_ROOM_INTEREST = """
SELECT room_id, 'member' AS kind, state_key AS value FROM current_state
WHERE room_id = ANY($1::text[]) AND type = 'm.room.member'
UNION ALL
SELECT room_id, 'alias', alias FROM room_aliases WHERE room_id = ANY($1::text[])
UNION ALL
SELECT c.room_id, 'canonical', e.json FROM current_state c
JOIN events e ON e.event_id = c.event_id
WHERE c.room_id = ANY($1::text[]) AND c.type = 'm.room.canonical_alias' AND c.state_key = ''
"""

_KEY_COUNTS = """
SELECT user_id, device_id, algorithm, count(*)::int AS n, FALSE AS fallback
FROM e2e_one_time_keys WHERE user_id = ANY($1::text[])
GROUP BY user_id, device_id, algorithm
UNION ALL
SELECT user_id, device_id, algorithm, 0, TRUE FROM e2e_fallback_keys
WHERE user_id = ANY($1::text[]) AND NOT used
"""


def _canonical_aliases(event_json: str) -> list[str]:
    content = json.loads(event_json).get("content")
    if not isinstance(content, dict):
        return []
    found = [content.get("alias")]
    alt = content.get("alt_aliases")
    if isinstance(alt, list):
        found.extend(alt)
    return [a for a in found if isinstance(a, str)]


class AppServiceDeliveryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start_positions(
        self, appservice_id: str, current: Mapping[str, int]
    ) -> dict[str, int]:
        """The appservice's stored positions; a stream it never followed
        starts at `current` (what happened before it was registered is not
        pushed)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO appservice_positions (appservice_id, stream, position)
                   SELECT $1, * FROM unnest($2::text[], $3::bigint[])
                   ON CONFLICT DO NOTHING""",
                appservice_id,
                list(current),
                list(current.values()),
            )
            await conn.execute(
                "INSERT INTO appservice_state (appservice_id) VALUES ($1) ON CONFLICT DO NOTHING",
                appservice_id,
            )
            rows = await conn.fetch(
                "SELECT stream, position FROM appservice_positions WHERE appservice_id = $1",
                appservice_id,
            )
        return {r["stream"]: r["position"] for r in rows}

    async def events(self, after: int, upto: int, limit: int) -> list[StreamEvent]:
        """Events in (after, upto] in stream order; outliers (soft-failed
        events among them) and rejected events are never pushed."""
        rows = await self._pool.fetch(
            """SELECT stream_ordering, event_id, room_id, type, state_key, sender FROM events
               WHERE stream_ordering > $1 AND stream_ordering <= $2
                 AND NOT outlier AND rejected_reason IS NULL
               ORDER BY stream_ordering LIMIT $3""",
            after,
            upto,
            limit,
        )
        return [StreamEvent(**r) for r in rows]

    async def rooms_interest(self, room_ids: Collection[str]) -> dict[str, RoomInterestRow]:
        """Members and aliases of many rooms, in one query."""
        members: dict[str, set[str]] = {r: set() for r in room_ids}
        aliases: dict[str, set[str]] = {r: set() for r in room_ids}
        for row in await self._pool.fetch(_ROOM_INTEREST, list(room_ids)):
            if row["kind"] == "member":
                members[row["room_id"]].add(row["value"])
            elif row["kind"] == "alias":
                aliases[row["room_id"]].add(row["value"])
            else:
                aliases[row["room_id"]].update(_canonical_aliases(row["value"]))
        return {r: RoomInterestRow(frozenset(members[r]), frozenset(aliases[r])) for r in room_ids}

    async def stripped_state(
        self, room_ids: Collection[str], types: Collection[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """{room: its current state events of these types with an empty state
        key, as stored JSON}, for many rooms in one query."""
        rows = await self._pool.fetch(
            """SELECT c.room_id, e.json FROM current_state c
               JOIN events e ON e.event_id = c.event_id
               WHERE c.room_id = ANY($1::text[]) AND c.type = ANY($2::text[])
                 AND c.state_key = ''""",
            list(room_ids),
            list(types),
        )
        state: dict[str, list[dict[str, Any]]] = {r: [] for r in room_ids}
        for r in rows:
            state[r["room_id"]].append(json.loads(r["json"]))
        return state

    async def receipts(self, after: int, upto: int, limit: int) -> list[tuple[int, Receipt]]:
        """Public read receipts that moved in (after, upto], with their position."""
        return await receipts_between(self._pool, after, upto, limit, ["m.read"])

    async def device_messages(self, after: int, upto: int, limit: int) -> list[DeviceMessage]:
        """To-device messages stored for local devices in (after, upto]."""
        rows = await self._pool.fetch(
            """SELECT stream_id, user_id, device_id, sender, type, content FROM to_device_inbox
               WHERE stream_id > $1 AND stream_id <= $2
               ORDER BY stream_id, user_id, device_id LIMIT $3""",
            after,
            upto,
            limit,
        )
        return [
            DeviceMessage(
                r["stream_id"],
                r["user_id"],
                r["device_id"],
                r["sender"],
                r["type"],
                json.loads(r["content"]),
            )
            for r in rows
        ]

    async def device_list_changes(self, after: int, upto: int, limit: int) -> list[tuple[int, str]]:
        """(position, user) of public device list changes in (after, upto]."""
        rows = await self._pool.fetch(
            """SELECT stream_id, user_id FROM device_list_changes
               WHERE stream_id > $1 AND stream_id <= $2 AND only_for IS NULL
               ORDER BY stream_id LIMIT $3""",
            after,
            upto,
            limit,
        )
        return [(r["stream_id"], r["user_id"]) for r in rows]

    async def joined_rooms(self, user_ids: Collection[str]) -> dict[str, set[str]]:
        """{user: rooms they are joined to now}, for many users in one query."""
        rows = await self._pool.fetch(
            """SELECT state_key, room_id FROM current_state
               WHERE type = 'm.room.member' AND membership = 'join'
                 AND state_key = ANY($1::text[])""",
            list(user_ids),
        )
        rooms: dict[str, set[str]] = {u: set() for u in user_ids}
        for r in rows:
            rooms[r["state_key"]].add(r["room_id"])
        return rooms

    async def key_counts(self, user_ids: Collection[str]) -> KeyCountRows:
        """One-time key counts and unused fallback key types of every device
        of these users, in one query."""
        one_time: dict[str, dict[str, dict[str, int]]] = {}
        fallback: dict[str, dict[str, list[str]]] = {}
        for r in await self._pool.fetch(_KEY_COUNTS, list(user_ids)):
            if r["fallback"]:
                fallback.setdefault(r["user_id"], {}).setdefault(r["device_id"], []).append(
                    r["algorithm"]
                )
            else:
                one_time.setdefault(r["user_id"], {}).setdefault(r["device_id"], {})[
                    r["algorithm"]
                ] = r["n"]
        return KeyCountRows(one_time, fallback)

    async def pending(self, appservice_id: str) -> PendingTransaction | None:
        row = await self._pool.fetchrow(
            """SELECT txn_id, body, positions, event_count FROM appservice_transactions
               WHERE appservice_id = $1""",
            appservice_id,
        )
        if row is None:
            return None
        return PendingTransaction(
            row["txn_id"], json.loads(row["body"]), json.loads(row["positions"]), row["event_count"]
        )

    async def create_transaction(
        self,
        appservice_id: str,
        body: dict[str, Any],
        positions: Mapping[str, int],
        event_count: int,
    ) -> PendingTransaction:
        """Store the next transaction under a new id (one statement: the id
        and the row are written together or not at all)."""
        txn_id = await self._pool.fetchval(
            """WITH next AS (
                   UPDATE appservice_state SET last_txn_id = last_txn_id + 1
                   WHERE appservice_id = $1 RETURNING last_txn_id
               )
               INSERT INTO appservice_transactions
                   (appservice_id, txn_id, body, positions, event_count)
               SELECT $1, last_txn_id, $2, $3, $4 FROM next
               RETURNING txn_id""",
            appservice_id,
            json.dumps(body, ensure_ascii=False),
            json.dumps(dict(positions)),
            event_count,
        )
        return PendingTransaction(txn_id, body, dict(positions), event_count)

    async def acknowledge(
        self, appservice_id: str, txn_id: int | None, positions: Mapping[str, int], now_ms: int
    ) -> None:
        """The appservice answered 2xx to `txn_id` (or nothing was owed to it
        up to `positions`): forget the transaction and move the positions,
        together."""
        async with self._pool.acquire() as conn, conn.transaction():
            if txn_id is not None:
                await conn.execute(
                    "DELETE FROM appservice_transactions WHERE appservice_id = $1 AND txn_id = $2",
                    appservice_id,
                    txn_id,
                )
                await conn.execute(
                    "UPDATE appservice_state SET last_success_ts = $2 WHERE appservice_id = $1",
                    appservice_id,
                    now_ms,
                )
            await conn.execute(
                """UPDATE appservice_positions p SET position = greatest(p.position, n.position)
                   FROM unnest($2::text[], $3::bigint[]) AS n(stream, position)
                   WHERE p.appservice_id = $1 AND p.stream = n.stream""",
                appservice_id,
                list(positions),
                list(positions.values()),
            )

    async def statuses(self, appservice_ids: Collection[str]) -> dict[str, DeliveryStatus]:
        """Positions, last success and the transaction in flight of these
        appservices, in one query."""
        rows = await self._pool.fetch(
            """SELECT s.appservice_id, s.last_success_ts, t.txn_id, t.event_count,
                      (SELECT json_object_agg(p.stream, p.position) FROM appservice_positions p
                       WHERE p.appservice_id = s.appservice_id) AS positions
               FROM appservice_state s
               LEFT JOIN appservice_transactions t ON t.appservice_id = s.appservice_id
               WHERE s.appservice_id = ANY($1::text[])""",
            list(appservice_ids),
        )
        return {
            r["appservice_id"]: DeliveryStatus(
                positions=json.loads(r["positions"]) if r["positions"] else {},
                last_success_ts=r["last_success_ts"],
                pending_txn_id=r["txn_id"],
                pending_events=r["event_count"] or 0,
            )
            for r in rows
        }

    async def events_behind(self, position: int, upto: int) -> int:
        """How many events of the stream lie in (position, upto]: what an
        appservice at `position` has yet to be offered."""
        return await self._pool.fetchval(
            """SELECT count(*) FROM events
               WHERE stream_ordering > $1 AND stream_ordering <= $2
                 AND NOT outlier AND rejected_reason IS NULL""",
            position,
            upto,
        )
