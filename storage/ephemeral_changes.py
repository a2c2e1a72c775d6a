"""Typing, public receipts and presence changed in a range of their streams:
what a cluster's federation sender and appservice delivery read to hear the
changes every process made (homeserver/cluster/ephemeral_follower.py).

Each read is one bounded query over the stream's index; a row is the
current state of its key (a typist, a receipt slot, a user), so changes
of one key that piled up between two reads come back as one row.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import attrs

from storage.presence import PresenceRow, presence_row
from storage.receipts import Receipt, receipts_between


@attrs.frozen
class TypingChange:
    stream_id: int
    room_id: str
    user_id: str
    # When their typing ends; None once they stopped.
    until: datetime | None
    # Whether they type now (until is still ahead, by the database's clock).
    typing: bool


class EphemeralChangeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def typing(self, after: int, upto: int, limit: int) -> list[TypingChange]:
        """The typists whose typing changed in (after, upto], oldest first."""
        rows = await self._pool.fetch(
            """SELECT stream_id, room_id, user_id, until, coalesce(until > now(), FALSE) AS typing
               FROM typing_users WHERE stream_id > $1 AND stream_id <= $2
               ORDER BY stream_id LIMIT $3""",
            after,
            upto,
            limit,
        )
        return [TypingChange(**dict(r)) for r in rows]

    async def typing_now(self) -> list[TypingChange]:
        """Everyone typing now: where a follower starts from."""
        rows = await self._pool.fetch(
            """SELECT stream_id, room_id, user_id, until, TRUE AS typing
               FROM typing_users WHERE until > now()"""
        )
        return [TypingChange(**dict(r)) for r in rows]

    async def public_receipts(
        self, after: int, upto: int, limit: int, *, with_private: bool = False
    ) -> list[tuple[int, Receipt]]:
        """m.read receipts stored in (after, upto], oldest first, with their
        positions (private receipts never leave their owner's server: only
        the pushers' badges, `with_private`, read them too)."""
        types = ["m.read", "m.read.private"] if with_private else ["m.read"]
        return await receipts_between(self._pool, after, upto, limit, types)

    async def presence(self, after: int, upto: int, limit: int) -> list[tuple[int, PresenceRow]]:
        """Presence stored in (after, upto], oldest first, with positions."""
        rows = await self._pool.fetch(
            """SELECT stream_id, user_id, state, status_msg, last_active_ts, currently_active
               FROM presence WHERE stream_id > $1 AND stream_id <= $2
               ORDER BY stream_id LIMIT $3""",
            after,
            upto,
            limit,
        )
        return [
            (
                r["stream_id"],
                presence_row(r),
            )
            for r in rows
        ]
