"""Delayed events (MSC4140): the rows behind scheduling, the actions on them
and the scheduler's claims.

A row's `status` is 'scheduled', 'sending' (claimed: the scheduler or a
`send` action is putting it into the room), or one of the finalised states
'sent', 'failed', 'cancelled'. Every change of status is one conditional
UPDATE, so two processes (or a retried request) never both act on one row.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import attrs

SCHEDULED = "scheduled"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"

_COLUMNS = """delay_id, user_id, device_id, room_id, event_type, state_key, state_event_id, content,
    origin_server_ts, delay_ms, scheduled_at, send_ts, status, finalised_ts, reason,
    event_id, error"""


@attrs.frozen
class DelayedEvent:
    delay_id: str
    user_id: str
    device_id: str | None
    room_id: str
    event_type: str
    state_key: str | None
    state_event_id: str | None
    content: dict[str, Any]
    origin_server_ts: int | None
    delay_ms: int
    scheduled_at: int
    send_ts: int
    status: str
    finalised_ts: int | None
    reason: str | None
    event_id: str | None
    error: dict[str, Any] | None


@attrs.frozen
class NewDelayedEvent:
    delay_id: str
    user_id: str
    device_id: str | None
    txn_id: str | None
    room_id: str
    event_type: str
    state_key: str | None
    state_event_id: str | None
    content: dict[str, Any]
    origin_server_ts: int | None
    delay_ms: int
    scheduled_at: int


@attrs.frozen
class CapReached:
    """The user has `limit` delayed events scheduled already; the next one to
    go out (freeing a place) is due at `next_send_ts`."""

    next_send_ts: int


def _row(r: asyncpg.Record) -> DelayedEvent:
    return DelayedEvent(
        delay_id=r["delay_id"],
        user_id=r["user_id"],
        device_id=r["device_id"],
        room_id=r["room_id"],
        event_type=r["event_type"],
        state_key=r["state_key"],
        state_event_id=r["state_event_id"],
        content=json.loads(r["content"]),
        origin_server_ts=r["origin_server_ts"],
        delay_ms=r["delay_ms"],
        scheduled_at=r["scheduled_at"],
        send_ts=r["send_ts"],
        status=r["status"],
        finalised_ts=r["finalised_ts"],
        reason=r["reason"],
        event_id=r["event_id"],
        error=json.loads(r["error"]) if r["error"] is not None else None,
    )


class DelayedEventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, new: NewDelayedEvent, limit: int) -> str | CapReached:
        """Store a scheduled event and return its delay id, or the id already
        given to the same transaction id; CapReached when the user has `limit`
        scheduled. The user's rows are serialised by an advisory lock so two
        requests at once cannot both take the last place."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('delayed_events:' || $1))", new.user_id
            )
            if new.txn_id is not None:
                earlier = await conn.fetchval(
                    """SELECT delay_id FROM delayed_events
                       WHERE user_id = $1 AND device_id = $2 AND txn_id = $3""",
                    new.user_id,
                    new.device_id,
                    new.txn_id,
                )
                if earlier is not None:
                    return str(earlier)
            outstanding = await conn.fetch(
                """SELECT send_ts FROM delayed_events
                   WHERE user_id = $1 AND status IN ('scheduled', 'sending')
                   ORDER BY send_ts""",
                new.user_id,
            )
            if len(outstanding) >= limit:
                # The send time that brings the user back under the limit.
                return CapReached(outstanding[len(outstanding) - limit]["send_ts"])
            await conn.execute(
                """INSERT INTO delayed_events (delay_id, user_id, device_id, txn_id, room_id,
                       event_type, state_key, state_event_id, content, origin_server_ts,
                       delay_ms, scheduled_at, send_ts)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
                new.delay_id,
                new.user_id,
                new.device_id,
                new.txn_id,
                new.room_id,
                new.event_type,
                new.state_key,
                new.state_event_id,
                json.dumps(new.content, ensure_ascii=False, separators=(",", ":")),
                new.origin_server_ts,
                new.delay_ms,
                new.scheduled_at,
                new.scheduled_at + new.delay_ms,
            )
            return new.delay_id

    async def get(self, delay_id: str) -> DelayedEvent | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM delayed_events WHERE delay_id = $1", delay_id
        )
        return _row(row) if row is not None else None

    async def list_for_user(
        self,
        user_id: str,
        *,
        statuses: tuple[str, ...],
        delay_ids: list[str] | None,
        offset: int,
        limit: int,
    ) -> list[DelayedEvent]:
        """The user's delayed events of these statuses: outstanding ones by
        send time, finalised ones newest first."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM delayed_events
                WHERE user_id = $1 AND status = ANY($2::text[])
                  AND ($3::text[] IS NULL OR delay_id = ANY($3::text[]))
                ORDER BY finalised_ts DESC NULLS FIRST, send_ts, delay_id
                OFFSET $4 LIMIT $5""",
            user_id,
            list(statuses),
            delay_ids,
            offset,
            limit,
        )
        return [_row(r) for r in rows]

    async def finalise_scheduled(
        self, delay_id: str, status: str, reason: str, now: int
    ) -> DelayedEvent | None:
        """Move a scheduled row to a finalised status; None if it was not scheduled."""
        row = await self._pool.fetchrow(
            f"""UPDATE delayed_events SET status = $2, reason = $3, finalised_ts = $4
                WHERE delay_id = $1 AND status = 'scheduled' RETURNING {_COLUMNS}""",
            delay_id,
            status,
            reason,
            now,
        )
        return _row(row) if row is not None else None

    async def restart(self, delay_id: str, now: int) -> DelayedEvent | None:
        """Start a scheduled row's delay again from `now`; None if it was not scheduled."""
        row = await self._pool.fetchrow(
            f"""UPDATE delayed_events SET scheduled_at = $2, send_ts = $2 + delay_ms
                WHERE delay_id = $1 AND status = 'scheduled' RETURNING {_COLUMNS}""",
            delay_id,
            now,
        )
        return _row(row) if row is not None else None

    async def claim(self, delay_id: str, now: int) -> DelayedEvent | None:
        """Claim one scheduled row for sending now (the `send` action)."""
        row = await self._pool.fetchrow(
            f"""UPDATE delayed_events SET status = 'sending', claimed_at = $2
                WHERE delay_id = $1 AND status = 'scheduled' RETURNING {_COLUMNS}""",
            delay_id,
            now,
        )
        return _row(row) if row is not None else None

    async def claim_due(self, now: int, stale_before: int, limit: int) -> list[DelayedEvent]:
        """Claim the rows due by `now`, and the claims older than `stale_before`
        (a process that stopped between claiming and finishing: their sends are
        idempotent, see scheduler.py), earliest send time first."""
        rows = await self._pool.fetch(
            f"""UPDATE delayed_events SET status = 'sending', claimed_at = $1
                WHERE delay_id IN (
                    SELECT delay_id FROM delayed_events
                    WHERE (status = 'scheduled' AND send_ts <= $1)
                       OR (status = 'sending' AND claimed_at <= $2)
                    ORDER BY send_ts LIMIT $3 FOR UPDATE SKIP LOCKED)
                RETURNING {_COLUMNS}""",
            now,
            stale_before,
            limit,
        )
        return sorted((_row(r) for r in rows), key=lambda d: (d.send_ts, d.delay_id))

    async def unclaim(self, delay_id: str) -> None:
        """Put a claimed row back to scheduled (a `send` action that failed)."""
        await self._pool.execute(
            """UPDATE delayed_events SET status = 'scheduled', claimed_at = NULL
               WHERE delay_id = $1 AND status = 'sending'""",
            delay_id,
        )

    async def mark_sent(self, delay_id: str, event_id: str, reason: str, now: int) -> None:
        await self._pool.execute(
            """UPDATE delayed_events
               SET status = 'sent', event_id = $2, reason = $3, finalised_ts = $4
               WHERE delay_id = $1 AND status = 'sending'""",
            delay_id,
            event_id,
            reason,
            now,
        )

    async def mark_overwritten(self, delay_id: str, now: int) -> None:
        """Cancel a claimed row whose state another user set meanwhile."""
        await self._pool.execute(
            """UPDATE delayed_events
               SET status = 'cancelled', reason = 'state', finalised_ts = $2
               WHERE delay_id = $1 AND status = 'sending'""",
            delay_id,
            now,
        )

    async def mark_failed(self, delay_id: str, error: dict[str, Any], now: int) -> None:
        await self._pool.execute(
            """UPDATE delayed_events
               SET status = 'failed', error = $2, reason = 'error', finalised_ts = $3
               WHERE delay_id = $1 AND status = 'sending'""",
            delay_id,
            json.dumps(error, ensure_ascii=False, separators=(",", ":")),
            now,
        )

    async def cancel_for_state(
        self, room_id: str, event_type: str, state_key: str, setter: str, now: int
    ) -> int:
        """Cancel the scheduled delayed state events of others than `setter`
        for this state; return how many."""
        result = await self._pool.execute(
            """UPDATE delayed_events
               SET status = 'cancelled', reason = 'state', finalised_ts = $5
               WHERE room_id = $1 AND event_type = $2 AND state_key = $3
                 AND status = 'scheduled' AND user_id <> $4""",
            room_id,
            event_type,
            state_key,
            setter,
            now,
        )
        return int(result.split()[-1])

    async def next_wake(self, stale_ms: int) -> int | None:
        """When the scheduler next has work: the earliest send time, or the
        time the oldest claim becomes stale."""
        return await self._pool.fetchval(
            """SELECT min(t) FROM (
                   SELECT min(send_ts) AS t FROM delayed_events WHERE status = 'scheduled'
                   UNION ALL
                   SELECT min(claimed_at) + $1 FROM delayed_events WHERE status = 'sending'
               ) AS due""",
            stale_ms,
        )

    async def purge_finalised(self, before_ts: int, keep_per_user: int) -> int:
        """Forget finalised rows older than `before_ts`, and beyond the newest
        `keep_per_user` of each user."""
        result = await self._pool.execute(
            """DELETE FROM delayed_events WHERE delay_id IN (
                   SELECT delay_id FROM (
                       SELECT delay_id, finalised_ts, row_number() OVER (
                           PARTITION BY user_id ORDER BY finalised_ts DESC) AS n
                       FROM delayed_events WHERE finalised_ts IS NOT NULL) AS f
                   WHERE f.finalised_ts < $1 OR f.n > $2)""",
            before_ts,
            keep_per_user,
        )
        return int(result.split()[-1])
