"""Reads and writes behind membership across servers: a user's newest member
event (out-of-band ones included), whether this server is in a room, and the
stripped state other servers send with invites and knocks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg
import attrs


@attrs.frozen
class LatestMembership:
    membership: str
    event_id: str
    sender: str


class RemoteMembershipStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def latest(self, room_id: str, user_id: str) -> LatestMembership | None:
        """The user's newest member event in the room, outliers included (an
        invite from another server is one), as /sync sees it."""
        row = await self._pool.fetchrow(
            """SELECT event_id, sender, json::jsonb -> 'content' ->> 'membership' AS membership
               FROM events
               WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2
                 AND rejected_reason IS NULL AND NOT soft_failed
               ORDER BY stream_ordering DESC LIMIT 1""",
            room_id,
            user_id,
        )
        if row is None or row["membership"] is None:
            return None
        return LatestMembership(row["membership"], row["event_id"], row["sender"])

    async def is_resident(self, room_id: str, server_name: str) -> bool:
        """Whether a user of `server_name` is joined to the room (its state is live here)."""
        return bool(
            await self._pool.fetchval(
                """SELECT 1 FROM current_state
                   WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'
                     AND right(state_key, length($2) + 1) = ':' || $2
                   LIMIT 1""",
                room_id,
                server_name,
            )
        )

    async def stripped_state(self, event_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """{invite or knock event id: the stripped state that came with it}."""
        rows = await self._pool.fetch(
            "SELECT event_id, state_json FROM stripped_room_state WHERE event_id = ANY($1)",
            list(event_ids),
        )
        return {r["event_id"]: json.loads(r["state_json"]) for r in rows}


async def save_stripped_state(
    conn: asyncpg.Connection, event_id: str, state: list[dict[str, Any]]
) -> None:
    """Keep the stripped state of an invite or knock, in the caller's transaction."""
    await conn.execute(
        """INSERT INTO stripped_room_state (event_id, state_json) VALUES ($1, $2)
           ON CONFLICT (event_id) DO UPDATE SET state_json = EXCLUDED.state_json""",
        event_id,
        json.dumps(state, ensure_ascii=False, separators=(",", ":")),
    )
