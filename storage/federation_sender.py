"""What the outbound federation sender reads and remembers: new local events,
which servers are in which rooms, what each destination is owed and has
acknowledged, and the EDUs that wait in outboxes."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg
import attrs

TO_DEVICE = "to_device"
EDU = "edu"


@attrs.frozen
class OutgoingEvent:
    """A local event to send, as stored: `pdu` is its signed federation JSON."""

    stream_ordering: int
    room_id: str
    pdu: dict[str, Any]
    event_id: str


@attrs.frozen
class OutboxEdu:
    """A stored EDU waiting for a destination; `source` and `key` name its row."""

    source: str
    key: int
    edu_type: str
    content: dict[str, Any]


class FederationSenderStore:
    def __init__(self, pool: asyncpg.Pool, *, shard: str | None = None) -> None:
        """`shard`: the sender of one shard of the destinations (a worker of
        a deployment), whose read position is its own."""
        self._pool = pool
        self._shard = shard

    async def start_position(self, current: int) -> int:
        """Where the sender stopped reading the events stream; on the very
        first start, `current` (history from before federation is not sent)."""
        if self._shard is not None:
            return await self._shard_start_position(current)
        return await self._pool.fetchval(
            """WITH inserted AS (
                   INSERT INTO federation_sender_position (stream_ordering) VALUES ($1)
                   ON CONFLICT DO NOTHING RETURNING stream_ordering
               )
               SELECT stream_ordering FROM inserted
               UNION ALL SELECT stream_ordering FROM federation_sender_position""",
            current,
        )

    async def _shard_start_position(self, current: int) -> int:
        """A shard new to the database starts where the least advanced
        sender stopped (the one process before, or the shards of another
        count): a destination may get an event twice after a change of the
        number of shards (servers ignore a PDU they have), never miss one."""
        return await self._pool.fetchval(
            """WITH inserted AS (
                   INSERT INTO federation_sender_shard_positions (shard, stream_ordering)
                   SELECT $1, coalesce(least(
                       (SELECT min(stream_ordering) FROM federation_sender_shard_positions),
                       (SELECT stream_ordering FROM federation_sender_position)), $2)
                   ON CONFLICT DO NOTHING RETURNING stream_ordering
               )
               SELECT stream_ordering FROM inserted
               UNION ALL SELECT stream_ordering FROM federation_sender_shard_positions
               WHERE shard = $1""",
            self._shard,
            current,
        )

    async def new_local_events(
        self, server_name: str, after: int, upto: int, limit: int
    ) -> list[OutgoingEvent]:
        """Events sent by this server's users in (after, upto], in stream
        order; outliers and rejected events are never sent."""
        rows = await self._pool.fetch(
            """SELECT stream_ordering, room_id, json, event_id FROM events
               WHERE stream_ordering > $2 AND stream_ordering <= $3
                 AND substring(sender from position(':' in sender) + 1) = $1
                 AND NOT outlier AND rejected_reason IS NULL
               ORDER BY stream_ordering LIMIT $4""",
            server_name,
            after,
            upto,
            limit,
        )
        return [
            OutgoingEvent(r["stream_ordering"], r["room_id"], json.loads(r["json"]), r["event_id"])
            for r in rows
        ]

    async def room_servers(self, room_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """{room: {server with joined members now: stream position of the
        oldest of their current member events}}, for many rooms in one query.
        An event older than that position predates the server's members (the
        sender may read the stream late), so it is not theirs to receive."""
        rows = await self._pool.fetch(
            """SELECT c.room_id,
                      substring(c.state_key from position(':' in c.state_key) + 1) AS server,
                      min(e.stream_ordering) AS since
               FROM current_state c JOIN events e ON e.event_id = c.event_id
               WHERE c.room_id = ANY($1::text[]) AND c.type = 'm.room.member'
                 AND c.membership = 'join'
               GROUP BY 1, 2""",
            list(room_ids),
        )
        servers: dict[str, dict[str, int]] = {r: {} for r in room_ids}
        for r in rows:
            servers[r["room_id"]][r["server"]] = r["since"]
        return servers

    async def servers_sharing_rooms(self, user_ids: Collection[str]) -> dict[str, set[str]]:
        """{user: servers with members joined to a room the user is joined to}."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT m.state_key AS user_id,
                      substring(o.state_key from position(':' in o.state_key) + 1) AS server
               FROM current_state m
               JOIN current_state o ON o.room_id = m.room_id AND o.type = 'm.room.member'
                                   AND o.membership = 'join'
               WHERE m.type = 'm.room.member' AND m.state_key = ANY($1::text[])
                 AND m.membership = 'join'""",
            list(user_ids),
        )
        servers: dict[str, set[str]] = {u: set() for u in user_ids}
        for r in rows:
            servers[r["user_id"]].add(r["server"])
        return servers

    async def record_batch(self, owed: Sequence[tuple[str, str, int]], position: int) -> None:
        """Remember (destination, room, stream ordering) of the newest event
        each destination is owed, and that the stream was read up to
        `position`: one transaction, so that a restart resumes consistently."""
        async with self._pool.acquire() as conn, conn.transaction():
            if owed:
                await conn.execute(
                    """INSERT INTO federation_destination_rooms
                           (destination, room_id, stream_ordering)
                       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                       ON CONFLICT (destination, room_id) DO UPDATE
                       SET stream_ordering = GREATEST(
                           federation_destination_rooms.stream_ordering,
                           EXCLUDED.stream_ordering)""",
                    [d for d, _, _ in owed],
                    [r for _, r, _ in owed],
                    [s for _, _, s in owed],
                )
            if self._shard is not None:
                await conn.execute(
                    """UPDATE federation_sender_shard_positions SET stream_ordering = $2
                       WHERE shard = $1""",
                    self._shard,
                    position,
                )
            else:
                await conn.execute(
                    "UPDATE federation_sender_position SET stream_ordering = $1", position
                )

    async def destinations_with_work(self) -> list[str]:
        """Destinations that are behind, or have stored EDUs waiting: at
        start-up, their queues are caught up."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT r.destination FROM federation_destination_rooms r
               LEFT JOIN federation_destination_positions p USING (destination)
               WHERE r.stream_ordering > coalesce(p.last_successful_stream, 0)
               UNION SELECT DISTINCT destination FROM to_device_outbox
               UNION SELECT DISTINCT destination FROM federation_edu_outbox"""
        )
        return [r["destination"] for r in rows]

    async def last_successful(self, destination: str) -> int:
        value = await self._pool.fetchval(
            """SELECT last_successful_stream FROM federation_destination_positions
               WHERE destination = $1""",
            destination,
        )
        return value or 0

    async def catch_up(self, destination: str, after: int, limit: int) -> list[OutgoingEvent]:
        """The newest owed event of each room whose newest is past `after`,
        oldest first."""
        rows = await self._pool.fetch(
            """SELECT r.stream_ordering, r.room_id, e.json, e.event_id
               FROM federation_destination_rooms r
               JOIN events e ON e.stream_ordering = r.stream_ordering
               WHERE r.destination = $1 AND r.stream_ordering > $2
               ORDER BY r.stream_ordering LIMIT $3""",
            destination,
            after,
            limit,
        )
        return [
            OutgoingEvent(r["stream_ordering"], r["room_id"], json.loads(r["json"]), r["event_id"])
            for r in rows
        ]

    async def outbox(self, destination: str, limit: int) -> list[OutboxEdu]:
        """Stored EDUs for the destination, oldest first: to-device messages,
        then device list and signing key updates."""
        rows = await self._pool.fetch(
            """(SELECT 'to_device' AS source, stream_id AS key, type, sender, message_id,
                       messages AS content
                FROM to_device_outbox WHERE destination = $1 ORDER BY stream_id LIMIT $2)
               UNION ALL
               (SELECT 'edu', id, edu_type, NULL, NULL, content
                FROM federation_edu_outbox WHERE destination = $1 ORDER BY id LIMIT $2)""",
            destination,
            limit,
        )
        edus = []
        for r in rows:
            if r["source"] == TO_DEVICE:
                content = {
                    "sender": r["sender"],
                    "type": r["type"],
                    "message_id": r["message_id"],
                    "messages": json.loads(r["content"]),
                }
                edus.append(OutboxEdu(TO_DEVICE, r["key"], "m.direct_to_device", content))
            else:
                edus.append(OutboxEdu(EDU, r["key"], r["type"], json.loads(r["content"])))
        return edus[:limit]

    async def acknowledge(
        self, destination: str, stream_ordering: int | None, sent: Sequence[OutboxEdu]
    ) -> None:
        """The destination accepted a transaction: its newest event, and the
        stored EDUs it carried, which are deleted. One transaction."""
        to_device = [e.key for e in sent if e.source == TO_DEVICE]
        others = [e.key for e in sent if e.source == EDU]
        async with self._pool.acquire() as conn, conn.transaction():
            if stream_ordering is not None:
                await conn.execute(
                    """INSERT INTO federation_destination_positions
                           (destination, last_successful_stream) VALUES ($1, $2)
                       ON CONFLICT (destination) DO UPDATE
                       SET last_successful_stream = GREATEST(
                           federation_destination_positions.last_successful_stream,
                           EXCLUDED.last_successful_stream)""",
                    destination,
                    stream_ordering,
                )
            if to_device:
                await conn.execute(
                    """DELETE FROM to_device_outbox
                       WHERE destination = $1 AND stream_id = ANY($2::bigint[])""",
                    destination,
                    to_device,
                )
            if others:
                await conn.execute(
                    "DELETE FROM federation_edu_outbox WHERE id = ANY($1::bigint[])", others
                )

    async def to_device_destinations(self, after: int, upto: int) -> list[str]:
        """Servers with to-device messages stored in (after, upto]."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT destination FROM to_device_outbox
               WHERE stream_id > $1 AND stream_id <= $2""",
            after,
            upto,
        )
        return [r["destination"] for r in rows]

    async def next_device_list_ids(self, user_id: str, count: int) -> int:
        """Reserve `count` consecutive m.device_list_update stream ids of the
        user; return the last one (the first is last - count + 1)."""
        return await self._pool.fetchval(
            """INSERT INTO federation_device_list_ids (user_id, stream_id) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE
               SET stream_id = federation_device_list_ids.stream_id + EXCLUDED.stream_id
               RETURNING stream_id""",
            user_id,
            count,
        )

    async def queue_edus(self, edus: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Store (destination, EDU type, content) rows for the destinations' queues."""
        if not edus:
            return
        await self._pool.execute(
            """INSERT INTO federation_edu_outbox (destination, edu_type, content)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[])""",
            [d for d, _, _ in edus],
            [t for _, t, _ in edus],
            [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for _, _, c in edus],
        )
