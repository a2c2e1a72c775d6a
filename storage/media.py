"""Media metadata: local media rows, cached thumbnails, URL previews.

The files themselves are handled by homeserver/media/files.py. Where a row
change and a file change must not interleave with another request on the same
content (storing a file while the last row pointing at it is deleted), the
caller's file action runs inside the transaction while a PostgreSQL advisory
lock on the content's hash is held.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import attrs

from storage.database import now_ms

# How precisely last_access_ts follows downloads.
ACCESS_RESOLUTION_MS = 10 * 60 * 1000

_COLUMNS = """media_id, user_id, created_ts, content_type, upload_name, media_length,
              sha256, authenticated, url_cache, quarantined_by, safe_from_quarantine,
              last_access_ts"""


@attrs.frozen
class LocalMedia:
    media_id: str
    user_id: str
    created_ts: int
    content_type: str | None
    upload_name: str | None
    # None until the content is uploaded (a media id from /create).
    media_length: int | None
    sha256: str | None
    authenticated: bool
    url_cache: str | None
    quarantined_by: str | None
    safe_from_quarantine: bool
    last_access_ts: int | None

    @property
    def uploaded(self) -> bool:
        return self.media_length is not None


@attrs.frozen
class NewContent:
    """Content that has been received and hashed, ready to be recorded."""

    media_id: str
    user_id: str
    content_type: str
    upload_name: str | None
    length: int
    sha256: str
    authenticated: bool
    url_cache: str | None = None


class StoreOutcome(enum.Enum):
    STORED = "stored"
    # The user's quota would be exceeded; nothing was written.
    OVER_QUOTA = "over_quota"
    # The media id (from /create) already has content, or is not the user's.
    NOT_WRITABLE = "not_writable"


def _media(row: asyncpg.Record) -> LocalMedia:
    return LocalMedia(**dict(row))


async def _lock(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)


class MediaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, media_id: str) -> LocalMedia | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM local_media WHERE media_id = $1", media_id
        )
        return _media(row) if row is not None else None

    async def get_for_serving(self, media_id: str) -> LocalMedia | None:
        """The row, noting the access (one statement). The access time is
        written at most every ACCESS_RESOLUTION_MS, so popular media does not
        turn every download into a row update."""
        row = await self._pool.fetchrow(
            f"""WITH touched AS (
                    UPDATE local_media SET last_access_ts = $2
                    WHERE media_id = $1
                      AND (last_access_ts IS NULL OR last_access_ts < $2 - $3::bigint))
                SELECT {_COLUMNS} FROM local_media WHERE media_id = $1""",
            media_id,
            now_ms(),
            ACCESS_RESOLUTION_MS,
        )
        return _media(row) if row is not None else None

    async def create_pending(
        self,
        media_id: str,
        user_id: str,
        *,
        authenticated: bool,
        max_pending: int,
        unused_since_ts: int,
    ) -> int | None:
        """Reserve a media id for a later upload.

        Returns None when the user already has `max_pending` reservations
        created after `unused_since_ts` and not yet uploaded to; otherwise the
        creation time.
        """
        created = now_ms()
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, "media-user:" + user_id)
            pending = await conn.fetchval(
                """SELECT count(*) FROM local_media
                   WHERE user_id = $1 AND media_length IS NULL AND created_ts > $2""",
                user_id,
                unused_since_ts,
            )
            if pending >= max_pending:
                return None
            await conn.execute(
                """INSERT INTO local_media (media_id, user_id, created_ts, authenticated)
                   VALUES ($1, $2, $3, $4)""",
                media_id,
                user_id,
                created,
                authenticated,
            )
        return created

    async def oldest_pending_ts(self, user_id: str, unused_since_ts: int) -> int | None:
        return await self._pool.fetchval(
            """SELECT min(created_ts) FROM local_media
               WHERE user_id = $1 AND media_length IS NULL AND created_ts > $2""",
            user_id,
            unused_since_ts,
        )

    async def store_content(
        self,
        content: NewContent,
        *,
        pending: bool,
        quota: int | None,
        place_file: Callable[[], Awaitable[None]],
    ) -> StoreOutcome:
        """Record uploaded content: a new row, or (`pending`) the content of a
        reserved media id of the same user that has none yet.

        The user's quota (bytes of uploads, URL preview images excepted) is
        checked under a per-user lock so that parallel uploads cannot overshoot
        it together. `place_file` moves the file into place while the content's
        hash is locked; if it fails, the row is not written.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            if quota is not None:
                await _lock(conn, "media-user:" + content.user_id)
                used = await conn.fetchval(
                    """SELECT COALESCE(sum(media_length), 0) FROM local_media
                       WHERE user_id = $1 AND url_cache IS NULL""",
                    content.user_id,
                )
                if used + content.length > quota:
                    return StoreOutcome.OVER_QUOTA
            await _lock(conn, "media-hash:" + content.sha256)
            values = (
                content.media_id,
                content.user_id,
                content.content_type,
                content.upload_name,
                content.length,
                content.sha256,
            )
            if pending:
                updated = await conn.fetchval(
                    """UPDATE local_media
                       SET content_type = $3, upload_name = $4, media_length = $5, sha256 = $6
                       WHERE media_id = $1 AND user_id = $2 AND media_length IS NULL
                       RETURNING 1""",
                    *values,
                )
                if updated is None:
                    return StoreOutcome.NOT_WRITABLE
            else:
                await conn.execute(
                    """INSERT INTO local_media (media_id, user_id, content_type, upload_name,
                           media_length, sha256, created_ts, authenticated, url_cache)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
                    *values,
                    now_ms(),
                    content.authenticated,
                    content.url_cache,
                )
            await place_file()
        return StoreOutcome.STORED

    async def delete(self, media_id: str, remove_content: Callable[[str], Awaitable[None]]) -> bool:
        """Delete a media id; its file and thumbnails go when no other media id
        shares the content (`remove_content(sha256)` runs under the hash lock).
        Returns whether the media id existed."""
        async with self._pool.acquire() as conn, conn.transaction():
            sha256 = await conn.fetchval(
                "SELECT sha256 FROM local_media WHERE media_id = $1", media_id
            )
            if sha256 is not None:
                await _lock(conn, "media-hash:" + sha256)
            deleted = await conn.fetchval(
                "DELETE FROM local_media WHERE media_id = $1 RETURNING 1", media_id
            )
            if deleted is None:
                return False
            # Media cached from other servers (storage/remote_media.py) may share the bytes.
            if sha256 is not None and not await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM local_media WHERE sha256 = $1)
                       OR EXISTS (SELECT 1 FROM remote_media WHERE sha256 = $1)""",
                sha256,
            ):
                await conn.execute("DELETE FROM media_thumbnails WHERE sha256 = $1", sha256)
                await remove_content(sha256)
        return True

    async def delete_expired_pending(self, created_before_ts: int) -> int:
        """Forget media ids reserved before then and never uploaded to."""
        result = await self._pool.execute(
            "DELETE FROM local_media WHERE media_length IS NULL AND created_ts < $1",
            created_before_ts,
        )
        return int(result.split()[-1])

    async def url_cache_media_before(self, created_before_ts: int, limit: int) -> list[str]:
        """Media ids of URL preview images fetched before then, oldest first."""
        rows = await self._pool.fetch(
            """SELECT media_id FROM local_media
               WHERE url_cache IS NOT NULL AND created_ts < $1
               ORDER BY created_ts LIMIT $2""",
            created_before_ts,
            limit,
        )
        return [r["media_id"] for r in rows]

    async def list_user_media(
        self, user_id: str, *, offset: int, limit: int
    ) -> tuple[list[LocalMedia], int]:
        """A page of the user's media, newest first, and how many there are."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM local_media WHERE user_id = $1
                    ORDER BY created_ts DESC, media_id OFFSET $2 LIMIT $3""",
                user_id,
                offset,
                limit,
            )
            total = await conn.fetchval(
                "SELECT count(*) FROM local_media WHERE user_id = $1", user_id
            )
        return [_media(r) for r in rows], total

    async def quarantine_ids(self, media_ids: Sequence[str], quarantined_by: str) -> int:
        """Quarantine these media ids (protected ones excepted); how many changed."""
        result = await self._pool.execute(
            """UPDATE local_media SET quarantined_by = $2
               WHERE media_id = ANY($1::text[]) AND NOT safe_from_quarantine
                 AND quarantined_by IS NULL""",
            list(media_ids),
            quarantined_by,
        )
        return int(result.split()[-1])

    async def quarantine_user(self, user_id: str, quarantined_by: str) -> int:
        """Quarantine every unprotected media of a user; how many changed."""
        result = await self._pool.execute(
            """UPDATE local_media SET quarantined_by = $2
               WHERE user_id = $1 AND NOT safe_from_quarantine AND quarantined_by IS NULL""",
            user_id,
            quarantined_by,
        )
        return int(result.split()[-1])

    async def unquarantine(self, media_id: str) -> bool:
        result = await self._pool.execute(
            "UPDATE local_media SET quarantined_by = NULL WHERE media_id = $1", media_id
        )
        return result != "UPDATE 0"

    async def set_protected(self, media_id: str, protected: bool) -> bool:
        """Mark media safe from quarantine (or not); False if unknown."""
        result = await self._pool.execute(
            "UPDATE local_media SET safe_from_quarantine = $2 WHERE media_id = $1",
            media_id,
            protected,
        )
        return result != "UPDATE 0"

    async def has_thumbnail(
        self, sha256: str, width: int, height: int, method: str, content_type: str, animated: bool
    ) -> bool:
        return await self._pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM media_thumbnails
               WHERE sha256 = $1 AND width = $2 AND height = $3 AND method = $4
                 AND content_type = $5 AND animated = $6)""",
            sha256,
            width,
            height,
            method,
            content_type,
            animated,
        )

    async def add_thumbnail(
        self,
        sha256: str,
        width: int,
        height: int,
        method: str,
        content_type: str,
        animated: bool,
        length: int,
    ) -> None:
        await self._pool.execute(
            """INSERT INTO media_thumbnails
                   (sha256, width, height, method, content_type, animated, length, created_ts)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
            sha256,
            width,
            height,
            method,
            content_type,
            animated,
            length,
            now_ms(),
        )

    async def get_preview(self, url: str, now: int) -> str | None:
        """A cached preview's JSON, if it has not expired."""
        return await self._pool.fetchval(
            "SELECT og FROM url_previews WHERE url = $1 AND expires_ts > $2", url, now
        )

    async def put_preview(self, url: str, og: str, expires_ts: int) -> None:
        """Cache a preview, and drop the expired ones while at it."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM url_previews WHERE expires_ts <= $1", now_ms())
            await conn.execute(
                """INSERT INTO url_previews (url, og, expires_ts) VALUES ($1, $2, $3)
                   ON CONFLICT (url) DO UPDATE SET og = $2, expires_ts = $3""",
                url,
                og,
                expires_ts,
            )
