"""Our media for other servers: /_matrix/federation/v1/media/{download,thumbnail}.

Only media uploaded here is served (the lookups are made for our own server
name, so media cached from a third server never is), through the same
services as the client API, so quarantined media is 404 M_NOT_FOUND here too.
The answer is multipart/mixed: a JSON metadata part (`{}`), then the bytes
with their Content-Type and Content-Disposition.
"""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint, query_int
from homeserver.api.stored_file import open_stored
from homeserver.errors import invalid_param
from homeserver.media.download import DEFAULT_TIMEOUT_MS, MediaDownloads, MediaFile
from homeserver.media.files import MediaFiles, StoredFile
from homeserver.media.headers import content_disposition
from homeserver.media.thumbnailer import Thumbnailer


class MultipartFileResponse(web.StreamResponse):
    """A file as the second part of a multipart/mixed answer, streamed.

    The boundary is a bare token (Synapse reads whatever follows
    `boundary=`), the metadata part has exactly one header, and the length is
    known up front, so the answer carries a Content-Length.
    """

    def __init__(self, file: MediaFile, stored: StoredFile, filename: str | None) -> None:
        super().__init__()
        self._stored = stored
        boundary = secrets.token_hex(16)
        self._head = (
            f"--{boundary}\r\n"
            "Content-Type: application/json\r\n\r\n"
            "{}\r\n"
            f"--{boundary}\r\n"
            f"Content-Type: {file.content_type}\r\n"
            f"Content-Disposition: {content_disposition(file.content_type, filename)}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = "multipart/mixed"
        self.headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
        self.content_length = len(self._head) + stored.length + len(self._tail)

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            await self.write(self._head)
            pieces = self._stored.read_range()
            while piece := await asyncio.to_thread(next, pieces, b""):
                await self.write(piece)
            await self.write(self._tail)
        finally:
            await asyncio.to_thread(self._stored.close)
        return writer


class FederationMediaApi:
    def __init__(
        self,
        downloads: MediaDownloads,
        thumbnailer: Thumbnailer,
        files: MediaFiles,
        *,
        server_name: str,
    ) -> None:
        self._files = files
        self._downloads = downloads
        self._thumbnailer = thumbnailer
        self._server_name = server_name

    @federation_endpoint("GET", FEDERATION_V1 + "/media/download/{mediaId}")
    async def download(self, req: FederationRequest) -> web.StreamResponse:
        file = await self._downloads.find(
            self._server_name,
            req.params["mediaId"],
            timeout_ms=query_int(req, "timeout_ms", DEFAULT_TIMEOUT_MS),
            legacy=False,
        )
        return await self._respond(file, file.upload_name)

    @federation_endpoint("GET", FEDERATION_V1 + "/media/thumbnail/{mediaId}")
    async def thumbnail(self, req: FederationRequest) -> web.StreamResponse:
        width, height = query_int(req, "width"), query_int(req, "height")
        if width < 1 or height < 1:
            raise invalid_param("width and height must be positive")
        method = req.query.get("method", "scale")
        if method not in ("crop", "scale"):
            raise invalid_param("method must be 'crop' or 'scale'")
        animated = req.query.get("animated", "false")
        if animated not in ("true", "false"):
            raise invalid_param("animated must be 'true' or 'false'")
        file = await self._thumbnailer.thumbnail(
            self._server_name,
            req.params["mediaId"],
            width=width,
            height=height,
            method=method,
            animated=animated == "true",
            timeout_ms=query_int(req, "timeout_ms", DEFAULT_TIMEOUT_MS),
            legacy=False,
        )
        return await self._respond(file, None)

    async def _respond(self, file: MediaFile, filename: str | None) -> MultipartFileResponse:
        # Opened before answering, so that a vanished file is a 404, not a cut answer.
        stored = await open_stored(self._files, file.path)
        return MultipartFileResponse(file, stored, filename)
