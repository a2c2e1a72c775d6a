"""Presence shared by the processes of a deployment: who syncs where, and
the sweep's one read (homeserver/cluster/presence.py)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg
import attrs

from storage.presence import PresenceRow, presence_row


@attrs.frozen
class SweptUser:
    """A local user who is not offline, as the sweep sees them: the stored
    row (and its position, to write over it only if nobody else did) and the
    latest sync and activity any process reported."""

    row: PresenceRow
    stream_id: int
    last_sync_ts: int
    last_active_ts: int


class PresenceSyncStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def beat(self, instance: str, entries: Sequence[tuple[str, int, int]]) -> None:
        """This process's news of (user, last sync, last activity), in one
        statement; a time never moves back (a late write keeps the later)."""
        await self._pool.execute(
            """INSERT INTO presence_syncs (user_id, instance, last_sync_ts, last_active_ts)
               SELECT u, $1, s, a FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS t(u, s, a)
               ON CONFLICT (user_id, instance) DO UPDATE
               SET last_sync_ts = greatest(presence_syncs.last_sync_ts, EXCLUDED.last_sync_ts),
                   last_active_ts = greatest(presence_syncs.last_active_ts,
                                             EXCLUDED.last_active_ts)""",
            instance,
            [user for user, _, _ in entries],
            [synced for _, synced, _ in entries],
            [active for _, _, active in entries],
        )

    async def not_offline(self, server_name: str) -> list[SweptUser]:
        """This server's users who are not offline, with what every process
        reported of them: one query. Other servers' users are left out: their
        server runs their timers."""
        rows = await self._pool.fetch(
            """SELECT p.user_id, p.state, p.status_msg, p.last_active_ts,
                      p.currently_active, p.stream_id,
                      coalesce(s.synced, 0) AS synced, coalesce(s.active, 0) AS active
               FROM presence p
               LEFT JOIN LATERAL (
                   SELECT max(last_sync_ts) AS synced, max(last_active_ts) AS active
                   FROM presence_syncs WHERE presence_syncs.user_id = p.user_id) s ON TRUE
               WHERE p.state <> 'offline' AND right(p.user_id, length($1)) = $1""",
            ":" + server_name,
        )
        return [
            SweptUser(
                presence_row(r),
                r["stream_id"],
                r["synced"],
                r["active"],
            )
            for r in rows
        ]

    async def synced_since(self, user_ids: Collection[str], ts: int) -> set[str]:
        """Those of `user_ids` some process reported syncing at `ts` or later."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT user_id FROM presence_syncs
               WHERE user_id = ANY($1::text[]) AND last_sync_ts >= $2""",
            list(user_ids),
            ts,
        )
        return {r["user_id"] for r in rows}

    async def forget_before(self, ts: int) -> None:
        """Drop reports older than `ts`: the sweep has applied them."""
        await self._pool.execute(
            "DELETE FROM presence_syncs WHERE greatest(last_sync_ts, last_active_ts) < $1", ts
        )
