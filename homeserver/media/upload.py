"""Uploads: POST /upload, and /create followed by PUT /upload/{server}/{id}.

Bodies are streamed to disk and hashed (files.py); the row is written and
the file moved into place in one step under the content's lock
(storage/media.py). A refused upload (too large, over quota, not the
uploader's media id) leaves neither row nor file behind.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import AsyncIterable

import attrs

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.media.files import MediaFiles, ReceivedFile, too_large
from storage.database import now_ms
from storage.media import MediaStore, NewContent, StoreOutcome

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_ID_ALPHABET = string.ascii_letters
MEDIA_ID_LENGTH = 24


def new_media_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(MEDIA_ID_LENGTH))


def over_quota() -> MatrixError:
    # Synapse's answer when a user's media upload limit is exceeded.
    return MatrixError(400, "M_RESOURCE_LIMIT_EXCEEDED", "Media upload limit exceeded")


def _clean_content_type(value: str | None) -> str:
    """The uploader's Content-Type, if it is printable ASCII (it is sent back
    as a response header verbatim)."""
    if value and value.isascii() and value.isprintable() and value.strip():
        return value.strip()
    return DEFAULT_CONTENT_TYPE


@attrs.frozen
class UploadLimits:
    max_upload_size: int
    max_user_quota_bytes: int | None
    max_pending_media_uploads: int
    unused_expiration_time_ms: int
    # Whether new media is for the authenticated endpoints only.
    authenticated: bool


class MediaUploader:
    def __init__(
        self, store: MediaStore, files: MediaFiles, *, server_name: str, limits: UploadLimits
    ) -> None:
        self._store = store
        self._files = files
        self._server_name = server_name
        self._limits = limits

    @property
    def max_upload_size(self) -> int:
        return self._limits.max_upload_size

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self._server_name}/{media_id}"

    def _check_declared_length(self, content_length: int | None) -> None:
        if content_length is not None and content_length > self._limits.max_upload_size:
            raise too_large(self._limits.max_upload_size)

    async def upload(
        self,
        user_id: str,
        chunks: AsyncIterable[bytes],
        *,
        content_length: int | None,
        content_type: str | None,
        filename: str | None,
    ) -> str:
        """Store a new upload; returns its mxc URI."""
        self._check_declared_length(content_length)
        received = await self._files.receive(chunks, self._limits.max_upload_size)
        media_id = new_media_id()
        await self._record(
            received, media_id, user_id, content_type, filename, pending=False, url_cache=None
        )
        return self.mxc(media_id)

    async def store_fetched(
        self, user_id: str, data: bytes, content_type: str, url: str
    ) -> tuple[str, int]:
        """Keep an image fetched for a URL preview; returns (media id, length)."""
        received = await asyncio.to_thread(self._files.receive_bytes, data)
        media_id = new_media_id()
        await self._record(
            received, media_id, user_id, content_type, None, pending=False, url_cache=url
        )
        return media_id, received.length

    async def create(self, user_id: str) -> tuple[str, int]:
        """Reserve a media id for a later PUT; returns (mxc URI, expiry ts)."""
        limits = self._limits
        media_id = new_media_id()
        unused_since = now_ms() - limits.unused_expiration_time_ms
        created = await self._store.create_pending(
            media_id,
            user_id,
            authenticated=limits.authenticated,
            max_pending=limits.max_pending_media_uploads,
            unused_since_ts=unused_since,
        )
        if created is None:
            oldest = await self._store.oldest_pending_ts(user_id, unused_since)
            retry_ms = max(0, (oldest or now_ms()) + limits.unused_expiration_time_ms - now_ms())
            raise MatrixError(
                429,
                "M_LIMIT_EXCEEDED",
                "You have too many uploads pending",
                retry_after_ms=retry_ms,
            )
        return self.mxc(media_id), created + limits.unused_expiration_time_ms

    async def upload_to(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        chunks: AsyncIterable[bytes],
        *,
        content_length: int | None,
        content_type: str | None,
        filename: str | None,
    ) -> None:
        """Upload the content of a media id reserved by `create`."""
        if server_name != self._server_name:
            raise not_found("Unknown media ID")
        media = await self._store.get(media_id)
        if media is None:
            raise not_found("Unknown media ID")
        if media.user_id != user_id:
            raise forbidden("Only the creator of the media ID can upload to it")
        if media.uploaded:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content")
        if media.created_ts < now_ms() - self._limits.unused_expiration_time_ms:
            raise not_found("Media ID has expired")
        self._check_declared_length(content_length)
        received = await self._files.receive(chunks, self._limits.max_upload_size)
        await self._record(
            received, media_id, user_id, content_type, filename, pending=True, url_cache=None
        )

    async def _record(
        self,
        received: ReceivedFile,
        media_id: str,
        user_id: str,
        content_type: str | None,
        filename: str | None,
        *,
        pending: bool,
        url_cache: str | None,
    ) -> None:
        content = NewContent(
            media_id=media_id,
            user_id=user_id,
            content_type=_clean_content_type(content_type),
            upload_name=filename or None,
            length=received.length,
            sha256=received.sha256,
            authenticated=self._limits.authenticated,
            url_cache=url_cache,
        )

        async def place() -> None:
            self._files.place(received)

        try:
            outcome = await self._store.store_content(
                content,
                pending=pending,
                quota=None if url_cache else self._limits.max_user_quota_bytes,
                place_file=place,
            )
        finally:
            self._files.discard(received)
        if outcome is StoreOutcome.OVER_QUOTA:
            raise over_quota()
        if outcome is StoreOutcome.NOT_WRITABLE:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content")
