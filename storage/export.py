"""What a data export reads (homeserver/export/): a user's or a room's events,
state, memberships, profile, account data, devices and media rows.

Every list is read in pages by keyset (the position after the previous
page's last row), one statement per page, so an export of any size holds one
page in memory. Events are read as clients may see them: neither rejected nor
outliers (which include soft-failed events), in stream order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg
import attrs

from storage.events import EVENT_COLUMNS, StoredEvent, stored_event

_SERVED = "NOT e.outlier AND e.rejected_reason IS NULL"


@attrs.frozen
class MediaRow:
    """A stored media file: local (origin is this server) or a cached remote one."""

    origin: str
    media_id: str
    content_type: str | None
    upload_name: str | None
    length: int
    sha256: str
    created_ts: int


def _media(row: asyncpg.Record) -> MediaRow:
    return MediaRow(
        row["origin"],
        row["media_id"],
        row["content_type"],
        row["upload_name"],
        row["media_length"],
        row["sha256"],
        row["created_ts"],
    )


class ExportStore:
    def __init__(self, pool: asyncpg.Pool, server_name: str) -> None:
        self._pool = pool
        self._server_name = server_name

    async def user_exists(self, user_id: str) -> bool:
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)", user_id
            )
        )

    async def room(self, room_id: str) -> dict[str, Any] | None:
        """The room's row (version, creator, creation time), None if unknown."""
        row = await self._pool.fetchrow(
            "SELECT room_id, room_version, creator, created_ts FROM rooms WHERE room_id = $1",
            room_id,
        )
        return None if row is None else dict(row)

    async def count_user(self, user_id: str) -> int:
        """How many records a user's export writes (for its progress)."""
        return await self._pool.fetchval(
            f"""SELECT (SELECT count(*) FROM events e WHERE e.sender = $1 AND {_SERVED})
                 + (SELECT count(*) FROM events e WHERE e.type = 'm.room.member'
                      AND e.state_key = $1 AND {_SERVED})
                 + (SELECT count(*) FROM account_data WHERE user_id = $1)
                 + (SELECT count(*) FROM local_media WHERE user_id = $1 AND sha256 IS NOT NULL)""",
            user_id,
        )

    async def count_room(self, room_id: str) -> int:
        """How many events and state entries a room's export writes (media not counted:
        which files the events reference is only known once they are read)."""
        return await self._pool.fetchval(
            f"""SELECT (SELECT count(*) FROM events e WHERE e.room_id = $1 AND {_SERVED})
                 + (SELECT count(*) FROM events e WHERE e.room_id = $1
                      AND e.type = 'm.room.member' AND {_SERVED})
                 + (SELECT count(*) FROM current_state WHERE room_id = $1)""",
            room_id,
        )

    async def _events(self, where: str, arg: str, after: int, limit: int) -> list[StoredEvent]:
        rows = await self._pool.fetch(
            f"""SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r USING (room_id)
                WHERE {where} AND {_SERVED} AND e.stream_ordering > $2
                ORDER BY e.stream_ordering LIMIT $3""",
            arg,
            after,
            limit,
        )
        return [stored_event(row) for row in rows]

    async def sent_events(self, user_id: str, after: int, limit: int) -> list[StoredEvent]:
        """The events `user_id` sent, in any room, after stream position `after`."""
        return await self._events("e.sender = $1", user_id, after, limit)

    async def memberships_of(self, user_id: str, after: int, limit: int) -> list[StoredEvent]:
        """Every m.room.member event about `user_id` (whoever sent it)."""
        return await self._events(
            "e.type = 'm.room.member' AND e.state_key = $1", user_id, after, limit
        )

    async def room_events(self, room_id: str, after: int, limit: int) -> list[StoredEvent]:
        return await self._events("e.room_id = $1", room_id, after, limit)

    async def room_memberships(self, room_id: str, after: int, limit: int) -> list[StoredEvent]:
        return await self._events(
            "e.room_id = $1 AND e.type = 'm.room.member'", room_id, after, limit
        )

    async def current_state(
        self, room_id: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[tuple[str, str], StoredEvent]]:
        """The room's current state events, ordered by (type, state_key), after
        `after` (None: from the first)."""
        after_type, after_key = after or (None, None)
        rows = await self._pool.fetch(
            f"""SELECT c.type AS key_type, c.state_key AS key_state, {EVENT_COLUMNS}
                FROM current_state c JOIN events e ON e.event_id = c.event_id
                JOIN rooms r ON r.room_id = e.room_id
                WHERE c.room_id = $1 AND ($2::text IS NULL OR (c.type, c.state_key) > ($2, $3))
                ORDER BY c.type, c.state_key LIMIT $4""",
            room_id,
            after_type,
            after_key,
            limit,
        )
        return [((row["key_type"], row["key_state"]), stored_event(row)) for row in rows]

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            "SELECT displayname, avatar_url, fields FROM profiles WHERE user_id = $1", user_id
        )
        if row is None:
            return None
        return {
            "displayname": row["displayname"],
            "avatar_url": row["avatar_url"],
            **json.loads(row["fields"]),
        }

    async def account_data(
        self, user_id: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str, Any]]:
        """(room id, '' for global; type; content) ordered by (room id, type), after
        `after` (None: from the first)."""
        after_room, after_type = after or (None, None)
        rows = await self._pool.fetch(
            """SELECT room_id, type, content FROM account_data
               WHERE user_id = $1 AND ($2::text IS NULL OR (room_id, type) > ($2, $3))
               ORDER BY room_id, type LIMIT $4""",
            user_id,
            after_room,
            after_type,
            limit,
        )
        return [(r["room_id"], r["type"], json.loads(r["content"])) for r in rows]

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        """The user's devices: names, creation and last use; no keys nor tokens."""
        rows = await self._pool.fetch(
            """SELECT device_id, display_name, created_ts, last_seen_ts, last_seen_ip,
                      last_seen_user_agent
               FROM devices WHERE user_id = $1 ORDER BY device_id""",
            user_id,
        )
        return [dict(r) for r in rows]

    async def uploads(self, user_id: str, after: tuple[int, str], limit: int) -> list[MediaRow]:
        """The media `user_id` uploaded (with content), by (created_ts, media_id)."""
        rows = await self._pool.fetch(
            """SELECT $2::text AS origin, media_id, content_type, upload_name, media_length,
                      sha256, created_ts
               FROM local_media
               WHERE user_id = $1 AND sha256 IS NOT NULL AND (created_ts, media_id) > ($3, $4)
               ORDER BY created_ts, media_id LIMIT $5""",
            user_id,
            self._server_name,
            after[0],
            after[1],
            limit,
        )
        return [_media(r) for r in rows]

    async def media(self, refs: Iterable[tuple[str, str]]) -> list[MediaRow]:
        """The stored files among (origin, media id) pairs: local uploads and cached
        remote media, in one statement."""
        refs = list(refs)
        if not refs:
            return []
        rows = await self._pool.fetch(
            """WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[]) AS w(origin, media_id))
               SELECT $3::text AS origin, m.media_id, m.content_type, m.upload_name,
                      m.media_length, m.sha256, m.created_ts
               FROM local_media m JOIN wanted w ON w.media_id = m.media_id AND w.origin = $3
               WHERE m.sha256 IS NOT NULL
               UNION ALL
               SELECT m.origin, m.media_id, m.content_type, m.upload_name, m.media_length,
                      m.sha256, m.created_ts
               FROM remote_media m JOIN wanted w USING (origin, media_id)""",
            [origin for origin, _ in refs],
            [media_id for _, media_id in refs],
            self._server_name,
        )
        return [_media(r) for r in rows]
