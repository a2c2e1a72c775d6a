"""Finding local media for administrators: referenced in a room, old and large."""

from __future__ import annotations

import asyncpg

# mxc://server/media_id inside an event's JSON text.
_MXC = r'mxc://([^/"\\ ]+)/([A-Za-z0-9_-]+)'


class AdminMediaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def media_in_room(self, room_id: str) -> list[tuple[str, str]]:
        """(server name, media id) of every mxc URL in the room's events, sorted."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT m[1] AS server_name, m[2] AS media_id
               FROM events e, regexp_matches(e.json, $2, 'g') AS m
               WHERE e.room_id = $1 ORDER BY 1, 2""",
            room_id,
            _MXC,
        )
        return [(r["server_name"], r["media_id"]) for r in rows]

    async def user_media_ids(self, user_id: str, *, offset: int, limit: int) -> list[str]:
        rows = await self._pool.fetch(
            """SELECT media_id FROM local_media WHERE user_id = $1
               ORDER BY created_ts DESC, media_id OFFSET $2 LIMIT $3""",
            user_id,
            offset,
            limit,
        )
        return [r["media_id"] for r in rows]

    async def old_media_ids(
        self, *, before_ts: int, size_gt: int, keep_profiles: bool, server_name: str
    ) -> list[str]:
        """Unprotected local media unused since `before_ts` and larger than `size_gt`;
        with `keep_profiles`, not what a profile shows as its avatar."""
        rows = await self._pool.fetch(
            """SELECT media_id FROM local_media m
               WHERE m.created_ts < $1 AND coalesce(m.last_access_ts, m.created_ts) < $1
                 AND coalesce(m.media_length, 0) > $2 AND NOT m.safe_from_quarantine
                 AND (NOT $3 OR NOT EXISTS (
                     SELECT 1 FROM profiles p
                     WHERE p.avatar_url = 'mxc://' || $4 || '/' || m.media_id))
               ORDER BY m.created_ts, m.media_id""",
            before_ts,
            size_gt,
            keep_profiles,
            server_name,
        )
        return [r["media_id"] for r in rows]
