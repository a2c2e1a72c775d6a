"""To-device messages: the inbox of each local device, and the outbox per remote server."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs


@attrs.frozen
class LocalMessage:
    """A message for one device of a local user, or for all of them ("*")."""

    user_id: str
    device_id: str
    content_json: str


@attrs.frozen
class RemoteMessages:
    """What one send holds for the users of one other server."""

    destination: str
    message_id: str
    # {user id: {device id or "*": content}} as JSON text.
    messages_json: str


@attrs.frozen
class InboxMessage:
    stream_id: int
    sender: str
    type: str
    content_json: str


# Every existing device a message names ("*": all of the user's devices).
# A device named both on its own and through "*" gets the message named on
# its own. Unknown users and devices are skipped, as in Synapse.
_DELIVER = """
INSERT INTO to_device_inbox (user_id, device_id, stream_id, sender, type, content)
SELECT DISTINCT ON (d.user_id, d.device_id) d.user_id, d.device_id, $4, $5, $6, m.content
FROM unnest($1::text[], $2::text[], $3::text[]) AS m(user_id, device_id, content)
JOIN devices d ON d.user_id = m.user_id AND (m.device_id = '*' OR d.device_id = m.device_id)
ORDER BY d.user_id, d.device_id, m.device_id = '*'
RETURNING user_id
"""

# The acknowledged messages go; the rest, up to the limit, are read. Both
# parts see the same snapshot, so the read skips the deleted rows itself.
_ACK_AND_READ = """
WITH acknowledged AS (
    DELETE FROM to_device_inbox
    WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3
)
SELECT stream_id, sender, type, content FROM to_device_inbox
WHERE user_id = $1 AND device_id = $2 AND stream_id > $3 AND stream_id <= $4
ORDER BY stream_id
LIMIT $5
"""


async def _deliver(
    conn: asyncpg.Connection,
    stream_id: int,
    sender: str,
    event_type: str,
    local: Sequence[LocalMessage],
) -> set[str]:
    """Put messages in local devices' inboxes; return the users who got one."""
    rows = await conn.fetch(
        _DELIVER,
        [m.user_id for m in local],
        [m.device_id for m in local],
        [m.content_json for m in local],
        stream_id,
        sender,
        event_type,
    )
    return {r["user_id"] for r in rows}


class ToDeviceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def send(
        self,
        stream_id: int,
        sender: str,
        sender_device: str,
        txn_id: str,
        event_type: str,
        local: Sequence[LocalMessage],
        remote: Sequence[RemoteMessages],
    ) -> set[str] | None:
        """Store one send at `stream_id`, in one transaction; return the local
        users who got a message, or None if the sender's device already used
        this transaction id (nothing is stored then)."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                """INSERT INTO to_device_txns (user_id, device_id, txn_id, stream_id)
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1""",
                sender,
                sender_device,
                txn_id,
                stream_id,
            )
            if fresh is None:
                return None
            recipients: set[str] = set()
            if local:
                recipients = await _deliver(conn, stream_id, sender, event_type, local)
            if remote:
                await conn.executemany(
                    """INSERT INTO to_device_outbox
                           (destination, stream_id, sender, type, message_id, messages)
                       VALUES ($1, $2, $3, $4, $5, $6)""",
                    [
                        (
                            r.destination,
                            stream_id,
                            sender,
                            event_type,
                            r.message_id,
                            r.messages_json,
                        )
                        for r in remote
                    ],
                )
            return recipients

    async def receive(
        self,
        stream_id: int,
        sender: str,
        message_id: str,
        event_type: str,
        local: Sequence[LocalMessage],
        now_ms: int,
        forget_before_ms: int,
    ) -> set[str] | None:
        """Store a message from another server at `stream_id`, in one
        transaction; return the local users who got it, or None if this
        sender's message_id was already received (nothing is stored then).
        Received ids older than `forget_before_ms` are forgotten on the way."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                """INSERT INTO to_device_federation_received (sender, message_id, received_ts)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1""",
                sender,
                message_id,
                now_ms,
            )
            if fresh is None:
                return None
            await conn.execute(
                "DELETE FROM to_device_federation_received WHERE received_ts < $1",
                forget_before_ms,
            )
            return await _deliver(conn, stream_id, sender, event_type, local)

    async def acknowledge_and_read(
        self, user_id: str, device_id: str, acknowledged: int, upto: int, limit: int
    ) -> list[InboxMessage]:
        """Delete the device's messages at or before `acknowledged`; return the
        oldest `limit` of those in (acknowledged, upto]. One statement."""
        rows = await self._pool.fetch(_ACK_AND_READ, user_id, device_id, acknowledged, upto, limit)
        return [InboxMessage(*r.values()) for r in rows]
