"""Which senders' events are erased: the account was deactivated with
`erase: true` (users.erased) and no legal hold covers the event.

A hold on the room or on the sender keeps the content as it was
(schema/0380_legal_holds.sql); lifting it erases the content again, since
erasure is applied when events are read and the original is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from storage.legal_holds import NOT_HELD_SQL

RoomSender = tuple[str, str]


class ErasureStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def erased(self, pairs: Iterable[RoomSender]) -> set[RoomSender]:
        """Of these (room, sender) pairs, those whose events are erased: one
        query for any number of events."""
        unique = set(pairs)
        if not unique:
            return set()
        rooms, senders = zip(*unique, strict=True)
        # NOT_HELD_SQL reads the alias `e` with room_id and sender columns.
        rows = await self._pool.fetch(
            f"""SELECT e.room_id, e.sender
                FROM unnest($1::text[], $2::text[]) AS e(room_id, sender)
                JOIN users u ON u.user_id = e.sender AND u.erased
                WHERE {NOT_HELD_SQL}""",
            list(rooms),
            list(senders),
        )
        return {(r["room_id"], r["sender"]) for r in rows}
