"""Thread subscriptions (MSC4306), on the account data stream."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg
import attrs


@attrs.frozen
class ThreadSubscription:
    room_id: str
    thread_root_id: str
    subscribed: bool
    automatic: bool
    # The event stream position at the unsubscription (None while subscribed).
    unsubscribed_at: int | None
    stream_id: int


class Conflict(Exception):
    """An automatic subscription caused by an event the server already had
    when the user unsubscribed (MSC4306: the server skips it)."""


def _row(r: asyncpg.Record) -> ThreadSubscription:
    return ThreadSubscription(
        r["room_id"],
        r["thread_root_id"],
        r["subscribed"],
        r["automatic"],
        r["unsubscribed_at"],
        r["stream_id"],
    )


_COLUMNS = "room_id, thread_root_id, subscribed, automatic, unsubscribed_at, stream_id"


class ThreadSubscriptionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(
        self, user_id: str, room_id: str, thread_root_id: str
    ) -> ThreadSubscription | None:
        row = await self._pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM thread_subscriptions
                WHERE user_id = $1 AND room_id = $2 AND thread_root_id = $3""",
            user_id,
            room_id,
            thread_root_id,
        )
        return _row(row) if row is not None else None

    async def subscribe(
        self, user_id: str, room_id: str, thread_root_id: str, cause_stream: int | None
    ) -> int | None:
        """Subscribe (automatically when `cause_stream`, the cause event's stream
        position, is given); return the new stream position, or None when
        nothing changed. Raises Conflict for a skipped automatic subscription.

        A manual subscription wins over an automatic one and is never
        downgraded by one. The row is locked, so concurrent requests of the
        user's devices are applied one after the other."""
        automatic = cause_stream is not None
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT subscribed, automatic, unsubscribed_at FROM thread_subscriptions
                   WHERE user_id = $1 AND room_id = $2 AND thread_root_id = $3 FOR UPDATE""",
                user_id,
                room_id,
                thread_root_id,
            )
            if row is not None:
                if row["subscribed"] and (automatic or not row["automatic"]):
                    return None
                unsubscribed_at = row["unsubscribed_at"]
                if (
                    not row["subscribed"]
                    and cause_stream is not None
                    and unsubscribed_at is not None
                    and cause_stream <= unsubscribed_at
                ):
                    raise Conflict()
            return await conn.fetchval(
                """INSERT INTO thread_subscriptions
                       (user_id, room_id, thread_root_id, subscribed, automatic,
                        unsubscribed_at, stream_id)
                   VALUES ($1, $2, $3, TRUE, $4, NULL, nextval('account_data_stream'))
                   ON CONFLICT (user_id, room_id, thread_root_id) DO UPDATE SET
                       subscribed = TRUE, automatic = EXCLUDED.automatic,
                       unsubscribed_at = NULL, stream_id = EXCLUDED.stream_id
                   RETURNING stream_id""",
                user_id,
                room_id,
                thread_root_id,
                automatic,
            )

    async def unsubscribe(
        self, user_id: str, room_id: str, thread_root_id: str, events_position: int
    ) -> int | None:
        """Unsubscribe, remembering the event stream position; return the new
        stream position, or None when the thread was not subscribed."""
        return await self._pool.fetchval(
            """UPDATE thread_subscriptions
               SET subscribed = FALSE, automatic = FALSE, unsubscribed_at = $4,
                   stream_id = nextval('account_data_stream')
               WHERE user_id = $1 AND room_id = $2 AND thread_root_id = $3 AND subscribed
               RETURNING stream_id""",
            user_id,
            room_id,
            thread_root_id,
            events_position,
        )

    async def changed_between(
        self, user_id: str, after: int, upto: int, limit: int
    ) -> list[ThreadSubscription]:
        """The latest `limit` changes in (after, upto], oldest first."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM (
                    SELECT {_COLUMNS} FROM thread_subscriptions
                    WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3
                    ORDER BY stream_id DESC LIMIT $4
                ) AS latest ORDER BY stream_id""",
            user_id,
            after,
            upto,
            limit,
        )
        return [_row(r) for r in rows]

    async def subscribers(
        self,
        room_id: str,
        thread_root_id: str,
        user_ids: Collection[str] | None,
        conn: asyncpg.Connection | None = None,
    ) -> frozenset[str]:
        """Those of `user_ids` (None: of anyone) subscribed to the thread."""
        rows = await (conn or self._pool).fetch(
            """SELECT user_id FROM thread_subscriptions
               WHERE room_id = $1 AND thread_root_id = $2 AND subscribed
                 AND ($3::text[] IS NULL OR user_id = ANY($3::text[]))""",
            room_id,
            thread_root_id,
            list(user_ids) if user_ids is not None else None,
        )
        return frozenset(r["user_id"] for r in rows)
