"""Metadata of media cached from other servers (schema/0018_remote_media.sql).

The bytes live in the same content-addressed store as local media; a new
file is moved into place while the content hash's advisory lock is held, as
storage/media.py does for uploads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import attrs

_COLUMNS = "origin, media_id, content_type, upload_name, media_length, sha256, created_ts"


@attrs.frozen
class RemoteMedia:
    origin: str
    media_id: str
    content_type: str
    upload_name: str | None
    media_length: int
    sha256: str
    created_ts: int


class RemoteMediaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, origin: str, media_id: str) -> RemoteMedia | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM remote_media WHERE origin = $1 AND media_id = $2",
            origin,
            media_id,
        )
        return RemoteMedia(**dict(row)) if row is not None else None

    async def store(self, media: RemoteMedia, place_file: Callable[[], Awaitable[None]]) -> None:
        """Record fetched media, replacing an earlier record of the same media
        (fetched again because its file had gone); `place_file` moves the
        bytes into place under the content's lock, before the commit."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", "media-hash:" + media.sha256
            )
            await conn.execute(
                f"""INSERT INTO remote_media ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (origin, media_id) DO UPDATE
                    SET content_type = $3, upload_name = $4, media_length = $5,
                        sha256 = $6, created_ts = $7""",
                *attrs.astuple(media),
            )
            await place_file()
