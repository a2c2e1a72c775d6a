"""Housekeeping of the media repository, run periodically in the background:
media ids reserved by /create and never uploaded to are forgotten once
expired, and images fetched for URL previews are deleted after two days
(previews themselves are cached for an hour), as Synapse does. Without it
the preview images of every link ever posted would stay on disk forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import attrs

from homeserver.media.manage import MediaManager
from storage.database import now_ms
from storage.media import MediaStore

logger = logging.getLogger(__name__)

URL_CACHE_MEDIA_MS = 2 * 24 * 60 * 60 * 1000
INTERVAL_S = 60 * 60
# Preview images deleted per batch, so one run never holds much at once.
BATCH = 500


@attrs.frozen
class ExpiryResult:
    pending: int
    url_cache: int


class MediaExpiry:
    def __init__(
        self, store: MediaStore, manager: MediaManager, *, unused_expiration_time_ms: int
    ) -> None:
        self._store = store
        self._manager = manager
        self._unused_expiration_ms = unused_expiration_time_ms
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, now: int) -> ExpiryResult:
        pending = await self._store.delete_expired_pending(now - self._unused_expiration_ms)
        removed = 0
        while True:
            media_ids = await self._store.url_cache_media_before(now - URL_CACHE_MEDIA_MS, BATCH)
            for media_id in media_ids:
                removed += await self._manager.delete(media_id)
            if len(media_ids) < BATCH:
                return ExpiryResult(pending, removed)

    async def _run_forever(self) -> None:
        while True:
            try:
                result = await self.run_once(now_ms())
                if result.pending or result.url_cache:
                    logger.info(
                        "media expiry: %d unused media ids, %d preview images",
                        result.pending,
                        result.url_cache,
                    )
            except Exception:
                logger.exception("media expiry failed; retrying at the next interval")
            await asyncio.sleep(INTERVAL_S)
