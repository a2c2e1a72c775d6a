"""Media of other servers: fetched over federation on first request, then
served from a local cache without asking the origin again.

The fetch asks the origin's `/_matrix/federation/v1/media/download/{mediaId}`
(signed), whose answer is multipart/mixed: a JSON metadata part, then either
the bytes or a `Location` to get them from. Servers older than Matrix 1.11
answer that endpoint with 404/405 M_UNRECOGNIZED (or 400 M_UNRECOGNIZED, old
Synapse); then the legacy `/_matrix/media/v3/download/{serverName}/{mediaId}`
is asked instead, with `allow_remote=false` so that the origin never turns
around and asks someone else (no request loops). The bytes are streamed into
the content-addressed store with the upload path's hashing and size limit, and
the metadata is kept in PostgreSQL (storage/remote_media.py).

Concurrent first requests for the same media share one fetch. Remote
thumbnails are made here from the full media (homeserver/media/thumbnailer.py
calls `fetch` like a download), rather than asked of the origin: one fetch
serves every thumbnail size, at the price of downloading the whole file once.

Failures are answered as Synapse answers them: the origin's 404 becomes
404 M_NOT_FOUND; media over the size limit 502 M_TOO_LARGE; anything else
(unreachable, timeout, other statuses, malformed answers) 502 M_UNKNOWN.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote, urljoin

import aiohttp
import attrs
from aiohttp import BodyPartReader, MultipartReader, hdrs

from federation.transport import FederationClient, FederationError
from homeserver.errors import MatrixError, not_found
from homeserver.media.download import MAX_TIMEOUT_MS, MediaFile
from homeserver.media.files import MediaFiles, ReceivedFile
from storage.database import now_ms
from storage.remote_media import RemoteMedia, RemoteMediaStore

logger = logging.getLogger(__name__)

FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download/"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download/"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CHUNK = 64 * 1024
# The metadata part is `{}` today; anything this large is not metadata.
_MAX_METADATA_BYTES = 64 * 1024
# Beyond the requester's timeout_ms, time for the origin's own answer (such
# as its 504 M_NOT_YET_UPLOADED) to reach us.
_GRACE_S = 5.0


class _Malformed(Exception):
    """The origin's answer is not what the spec says it must be."""


@attrs.frozen
class _Fetched:
    received: ReceivedFile
    content_type: str | None
    upload_name: str | None


def _failed() -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", "Failed to fetch remote media")


def _clean_content_type(value: str | None) -> str:
    """The origin's Content-Type if it can be sent back as a header verbatim."""
    if value and value.isascii() and value.isprintable() and value.strip():
        return value.strip()
    return DEFAULT_CONTENT_TYPE


async def _error_code(resp: aiohttp.ClientResponse) -> str | None:
    """The errcode of a (small) JSON error answer, if it is one."""
    try:
        body = json.loads(await resp.content.read(_MAX_METADATA_BYTES))
    except (ValueError, aiohttp.ClientError, TimeoutError):
        return None
    errcode = body.get("errcode") if isinstance(body, dict) else None
    return errcode if isinstance(errcode, str) else None


def _unrecognised(status: int, errcode: str | None) -> bool:
    """Whether the origin does not know the federation media endpoint."""
    return (status in (404, 405) and errcode in (None, "M_UNRECOGNIZED")) or (
        status == 400 and errcode == "M_UNRECOGNIZED"
    )


def _remote_error(status: int) -> MatrixError:
    if status == 404:
        return not_found("Remote media not found")
    return _failed()


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_CHUNK):
        yield chunk


class FederationMediaFetcher:
    """The `remote` of homeserver/media/download.py's MediaDownloads."""

    def __init__(
        self,
        store: RemoteMediaStore,
        files: MediaFiles,
        client: Callable[[], FederationClient],
        *,
        max_size: int,
    ) -> None:
        self._store = store
        self._files = files
        # A getter: the client is made with the federation listener, after
        # the media repository.
        self._client = client
        self._max_size = max_size
        self._fetches: dict[tuple[str, str], asyncio.Task[MediaFile]] = {}

    async def fetch(self, server_name: str, media_id: str, timeout_ms: int) -> MediaFile:
        """The cached file of mxc://server_name/media_id, fetched first if needed.

        A cached record whose file has gone from disk (lost, or removed by
        hand to free space) is fetched again.
        """
        cached = await self._store.get(server_name, media_id)
        if cached is not None:
            file = self._file(cached)
            if file.path.exists():
                return file
        key = (server_name, media_id)
        task = self._fetches.get(key)
        if task is None:
            task = asyncio.create_task(self._download(server_name, media_id, timeout_ms))
            self._fetches[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: a requester giving up does not cancel the others' fetch.
        return await asyncio.shield(task)

    def _finished(self, key: tuple[str, str], task: asyncio.Task[MediaFile]) -> None:
        self._fetches.pop(key, None)
        if not task.cancelled():
            # Retrieved, so that a fetch every requester gave up on is not
            # reported as an exception nobody looked at.
            task.exception()

    def _file(self, media: RemoteMedia) -> MediaFile:
        return MediaFile(
            path=self._files.content_path(media.sha256),
            content_type=media.content_type,
            upload_name=media.upload_name,
            length=media.media_length,
            sha256=media.sha256,
        )

    async def _download(self, origin: str, media_id: str, timeout_ms: int) -> MediaFile:
        wait_ms = min(max(timeout_ms, 0), MAX_TIMEOUT_MS)
        wait_s = wait_ms / 1000 + _GRACE_S
        try:
            fetched = await self._from_federation(origin, media_id, wait_ms, wait_s)
            if fetched is None:
                fetched = await self._from_legacy(origin, media_id, wait_ms, wait_s)
        except MatrixError as e:
            if e.errcode == "M_TOO_LARGE":
                # The upload limit's 413 is the origin's fault here, not the requester's.
                raise MatrixError(502, "M_TOO_LARGE", "Remote media is too large") from None
            raise
        except (FederationError, _Malformed, aiohttp.ClientError, TimeoutError, ValueError) as e:
            logger.warning("fetching mxc://%s/%s failed: %r", origin, media_id, e)
            raise _failed() from None
        media = RemoteMedia(
            origin=origin,
            media_id=media_id,
            content_type=_clean_content_type(fetched.content_type),
            upload_name=fetched.upload_name or None,
            media_length=fetched.received.length,
            sha256=fetched.received.sha256,
            created_ts=now_ms(),
        )
        received = fetched.received

        async def place() -> None:
            self._files.place(received)

        try:
            await self._store.store(media, place)
        finally:
            self._files.discard(received)
        return self._file(media)

    async def _from_federation(
        self, origin: str, media_id: str, wait_ms: int, wait_s: float
    ) -> _Fetched | None:
        """The media from the federation endpoint; None if the origin lacks it."""
        async with self._client().get_stream(
            origin,
            FEDERATION_DOWNLOAD + quote(media_id, safe=""),
            query={"timeout_ms": str(wait_ms)},
            timeout_s=wait_s,
        ) as resp:
            if resp.status != 200:
                if _unrecognised(resp.status, await _error_code(resp)):
                    return None
                raise _remote_error(resp.status)
            if resp.content_type != "multipart/mixed":
                raise _Malformed(f"answer of type {resp.content_type}, not multipart/mixed")
            reader = MultipartReader.from_response(resp)
            metadata = await reader.next()
            if not isinstance(metadata, BodyPartReader) or (
                metadata.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0].strip()
                != "application/json"
            ):
                raise _Malformed("the first part is not JSON metadata")
            raw = bytearray()
            async for chunk in _part_chunks(metadata):
                raw += chunk
                if len(raw) > _MAX_METADATA_BYTES:
                    raise _Malformed("the metadata part is too large")
            if not isinstance(json.loads(raw), dict):
                raise _Malformed("the metadata is not a JSON object")
            media = await reader.next()
            if not isinstance(media, BodyPartReader):
                raise _Malformed("no media part")
            location = media.headers.get(hdrs.LOCATION)
            if location:
                return await self._from_url(location, wait_s)
            received = await self._files.receive(_part_chunks(media), self._max_size)
            try:
                if await reader.next() is not None:
                    raise _Malformed("more than two parts")
            except BaseException:
                self._files.discard(received)
                raise
            return _Fetched(received, media.headers.get(hdrs.CONTENT_TYPE), media.filename)

    async def _from_legacy(
        self, origin: str, media_id: str, wait_ms: int, wait_s: float
    ) -> _Fetched:
        """The media from the pre-1.11 download endpoint, which may redirect."""
        path = f"{LEGACY_DOWNLOAD}{quote(origin, safe='')}/{quote(media_id, safe='')}"
        query = {"allow_remote": "false", "allow_redirect": "true", "timeout_ms": str(wait_ms)}
        async with self._client().get_stream(origin, path, query=query, timeout_s=wait_s) as resp:
            location = resp.headers.get(hdrs.LOCATION)
            if resp.status in (307, 308) and location:
                return await self._from_url(urljoin(str(resp.url), location), wait_s)
            return await self._receive(resp)

    async def _from_url(self, url: str, wait_s: float) -> _Fetched:
        async with self._client().open_url(url, timeout_s=wait_s) as resp:
            return await self._receive(resp)

    async def _receive(self, resp: aiohttp.ClientResponse) -> _Fetched:
        """The body of a plain (not multipart) download answer."""
        if resp.status != 200:
            raise _remote_error(resp.status)
        if resp.content_length is not None and resp.content_length > self._max_size:
            raise MatrixError(502, "M_TOO_LARGE", "Remote media is too large")
        received = await self._files.receive(resp.content.iter_chunked(_CHUNK), self._max_size)
        disposition = resp.content_disposition
        return _Fetched(
            received,
            resp.headers.get(hdrs.CONTENT_TYPE),
            disposition.filename if disposition is not None else None,
        )
