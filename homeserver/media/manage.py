"""Moderation of local media, for the admin API: quarantine, protection,
deletion and listing. Deleting the last media id that points at some bytes
removes the file and its thumbnails from disk as well."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from homeserver.media.files import MediaFiles
from storage.media import LocalMedia, MediaStore


class MediaManager:
    def __init__(self, store: MediaStore, files: MediaFiles) -> None:
        self._store = store
        self._files = files

    async def delete(self, media_id: str) -> bool:
        """Delete a local media id; False if there was none."""

        async def remove(sha256: str) -> None:
            await asyncio.to_thread(self._files.remove_content, sha256)

        return await self._store.delete(media_id, remove)

    async def quarantine(self, media_ids: Sequence[str], by: str) -> int:
        """Stop serving these media ids (protected ones excepted); how many changed."""
        return await self._store.quarantine_ids(media_ids, by)

    async def quarantine_user(self, user_id: str, by: str) -> int:
        """Stop serving every unprotected upload of a user; how many changed."""
        return await self._store.quarantine_user(user_id, by)

    async def unquarantine(self, media_id: str) -> bool:
        return await self._store.unquarantine(media_id)

    async def protect(self, media_id: str, protected: bool = True) -> bool:
        """Make media safe from quarantine (or no longer); False if unknown."""
        return await self._store.set_protected(media_id, protected)

    async def user_media(
        self, user_id: str, *, offset: int, limit: int
    ) -> tuple[list[LocalMedia], int]:
        """A page of a user's media, newest first, and the total count."""
        return await self._store.list_user_media(user_id, offset=offset, limit=limit)
