"""Finding the file behind an mxc URI, for downloads and thumbnails.

Local media is looked up here. Media of other servers is the job of a remote
fetcher (federation's /_matrix/federation/v1/media/download, with a local
cache), passed in at construction by server.py; without one, remote media
is 404 M_NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Protocol

import attrs

from homeserver.errors import MatrixError, not_found
from homeserver.media.files import MediaFiles
from storage.database import now_ms
from storage.media import LocalMedia, MediaStore

DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
# How often a download waiting for an upload (after /create) looks again.
_POLL_INTERVAL_S = 0.5


@attrs.frozen
class MediaFile:
    """A file ready to be served."""

    path: Path
    content_type: str
    upload_name: str | None
    length: int
    # Content hash, the key of the thumbnail cache.
    sha256: str


class RemoteMediaFetcher(Protocol):
    """Gets (and caches) media of another server."""

    async def fetch(self, server_name: str, media_id: str, timeout_ms: int) -> MediaFile: ...


class MediaDownloads:
    def __init__(
        self,
        store: MediaStore,
        files: MediaFiles,
        *,
        server_name: str,
        unused_expiration_time_ms: int,
        authenticated_media: bool,
        remote: RemoteMediaFetcher | None,
    ) -> None:
        self._store = store
        self._files = files
        self._server_name = server_name
        self._unused_expiration_ms = unused_expiration_time_ms
        self._authenticated_media = authenticated_media
        self._remote = remote

    async def find(
        self,
        server_name: str,
        media_id: str,
        *,
        timeout_ms: int,
        legacy: bool,
        allow_remote: bool = True,
    ) -> MediaFile:
        """The file of an mxc URI, or a Matrix error.

        `legacy`: the request came through an unauthenticated endpoint, which
        may not serve media uploaded while authenticated media was enforced.
        `allow_remote=False` (a legacy request of another server) never asks
        a third server, so that servers cannot send requests round in a loop.
        Media reserved by /create but not uploaded yet is waited for up to
        `timeout_ms`, then 504 M_NOT_YET_UPLOADED.
        """
        if server_name != self._server_name:
            if self._remote is None or not allow_remote or (legacy and self._authenticated_media):
                raise not_found("Not found")
            return await self._remote.fetch(server_name, media_id, timeout_ms)
        deadline = time.monotonic() + min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        while True:
            media = await self._store.get_for_serving(media_id)
            if media is None or media.quarantined_by is not None:
                raise not_found("Not found")
            if legacy and self._authenticated_media and media.authenticated:
                raise not_found("Not found")
            if media.uploaded:
                return self._file(media)
            if media.created_ts < now_ms() - self._unused_expiration_ms:
                raise not_found("Not found")
            if time.monotonic() >= deadline:
                raise MatrixError(504, "M_NOT_YET_UPLOADED", "Media has not been uploaded yet")
            await asyncio.sleep(_POLL_INTERVAL_S)

    def _file(self, media: LocalMedia) -> MediaFile:
        assert media.sha256 is not None and media.media_length is not None
        return MediaFile(
            path=self._files.content_path(media.sha256),
            content_type=media.content_type or "application/octet-stream",
            upload_name=media.upload_name,
            length=media.media_length,
            sha256=media.sha256,
        )
