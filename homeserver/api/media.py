"""The content repository: uploads, downloads, thumbnails, URL previews, config.

Authenticated endpoints live under /_matrix/client/v1/media; the legacy
/_matrix/media/v3 ones (also r0 and v1) stay for old clients, without access
tokens for downloads and thumbnails. Upload bodies are streamed
(`stream_body`), so they may be larger than the API's usual body limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.stored_file import StoredFileResponse, open_stored
from homeserver.errors import MatrixError, invalid_param, missing_param
from homeserver.media.download import DEFAULT_TIMEOUT_MS, MediaDownloads, MediaFile
from homeserver.media.files import MediaFiles
from homeserver.media.headers import media_headers
from homeserver.media.preview import UrlPreviewer
from homeserver.media.thumbnailer import Thumbnailer
from homeserver.media.upload import MediaUploader

LEGACY = ("/_matrix/media/v3", "/_matrix/media/r0", "/_matrix/media/v1")
CREATE = ("/_matrix/media/v1",)
AUTHENTICATED = ("/_matrix/client/v1/media",)
_CHUNK = 64 * 1024


def _int_param(req: ClientRequest, name: str, default: int | None = None) -> int:
    value = req.query.get(name)
    if value is None:
        if default is None:
            raise missing_param(f"Missing integer query parameter {name!r}")
        return default
    try:
        return int(value)
    except ValueError:
        raise invalid_param(f"Query parameter {name!r} must be an integer") from None


async def _chunks(req: ClientRequest) -> AsyncIterator[bytes]:
    if req.content is not None:
        async for chunk in req.content.iter_chunked(_CHUNK):
            yield chunk


def _content_length(req: ClientRequest) -> int | None:
    value = req.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


class MediaApi:
    def __init__(
        self,
        uploader: MediaUploader,
        downloads: MediaDownloads,
        thumbnailer: Thumbnailer,
        previewer: UrlPreviewer | None,
        files: MediaFiles,
    ) -> None:
        self._files = files
        self._uploader = uploader
        self._downloads = downloads
        self._thumbnailer = thumbnailer
        # None: URL previews are off, and the endpoint is unknown (as Synapse).
        self._previewer = previewer

    @endpoint("POST", "/upload", prefixes=LEGACY, stream_body=True)
    async def upload(self, req: ClientRequest) -> dict[str, Any]:
        mxc = await self._uploader.upload(
            req.user.user_id,
            _chunks(req),
            content_length=_content_length(req),
            content_type=req.headers.get("Content-Type"),
            filename=req.query.get("filename"),
        )
        return {"content_uri": mxc}

    @endpoint("POST", "/create", prefixes=CREATE)
    async def create(self, req: ClientRequest) -> dict[str, Any]:
        mxc, expires = await self._uploader.create(req.user.user_id)
        return {"content_uri": mxc, "unused_expires_at": expires}

    @endpoint("PUT", "/upload/{serverName}/{mediaId}", prefixes=LEGACY, stream_body=True)
    async def upload_to(self, req: ClientRequest) -> dict[str, Any]:
        await self._uploader.upload_to(
            req.user.user_id,
            req.params["serverName"],
            req.params["mediaId"],
            _chunks(req),
            content_length=_content_length(req),
            content_type=req.headers.get("Content-Type"),
            filename=req.query.get("filename"),
        )
        return {}

    @endpoint("GET", "/config", prefixes=AUTHENTICATED)
    @endpoint("GET", "/config", prefixes=LEGACY)
    async def config(self, req: ClientRequest) -> dict[str, Any]:
        return {"m.upload.size": self._uploader.max_upload_size}

    @endpoint("GET", "/download/{serverName}/{mediaId}", prefixes=AUTHENTICATED, guest_ok=True)
    @endpoint(
        "GET", "/download/{serverName}/{mediaId}/{fileName}", prefixes=AUTHENTICATED, guest_ok=True
    )
    async def download(self, req: ClientRequest) -> web.StreamResponse:
        return await self._download(req, legacy=False)

    @endpoint("GET", "/download/{serverName}/{mediaId}", prefixes=LEGACY, auth=False)
    @endpoint("GET", "/download/{serverName}/{mediaId}/{fileName}", prefixes=LEGACY, auth=False)
    async def legacy_download(self, req: ClientRequest) -> web.StreamResponse:
        return await self._download(req, legacy=True)

    async def _download(self, req: ClientRequest, *, legacy: bool) -> web.StreamResponse:
        file = await self._downloads.find(
            req.params["serverName"],
            req.params["mediaId"],
            timeout_ms=_int_param(req, "timeout_ms", DEFAULT_TIMEOUT_MS),
            legacy=legacy,
            allow_remote=req.query_bool("allow_remote", default=True),
        )
        return await self._respond(req, file, req.params.get("fileName") or file.upload_name)

    @endpoint("GET", "/thumbnail/{serverName}/{mediaId}", prefixes=AUTHENTICATED, guest_ok=True)
    async def thumbnail(self, req: ClientRequest) -> web.StreamResponse:
        return await self._thumbnail(req, legacy=False)

    @endpoint("GET", "/thumbnail/{serverName}/{mediaId}", prefixes=LEGACY, auth=False)
    async def legacy_thumbnail(self, req: ClientRequest) -> web.StreamResponse:
        return await self._thumbnail(req, legacy=True)

    async def _thumbnail(self, req: ClientRequest, *, legacy: bool) -> web.StreamResponse:
        width = _int_param(req, "width")
        height = _int_param(req, "height")
        if width < 1 or height < 1:
            raise invalid_param("width and height must be positive")
        method = req.query.get("method", "scale")
        if method not in ("crop", "scale"):
            raise invalid_param("method must be 'crop' or 'scale'")
        file = await self._thumbnailer.thumbnail(
            req.params["serverName"],
            req.params["mediaId"],
            width=width,
            height=height,
            method=method,
            animated=req.query_bool("animated"),
            timeout_ms=_int_param(req, "timeout_ms", DEFAULT_TIMEOUT_MS),
            legacy=legacy,
            allow_remote=req.query_bool("allow_remote", default=True),
        )
        return await self._respond(req, file, None)

    async def _respond(
        self, req: ClientRequest, file: MediaFile, filename: str | None
    ) -> web.StreamResponse:
        headers = media_headers(file.content_type, filename)
        if not self._files.encrypted:
            return web.FileResponse(file.path, headers=headers)
        stored = await open_stored(self._files, file.path)
        return StoredFileResponse(stored, headers, req.headers.get("Range"))

    @endpoint("GET", "/preview_url", prefixes=AUTHENTICATED)
    @endpoint("GET", "/preview_url", prefixes=LEGACY)
    async def preview_url(self, req: ClientRequest) -> dict[str, Any]:
        if self._previewer is None:
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        url = req.query.get("url")
        if not url:
            raise missing_param("Missing string query parameter 'url'")
        # `ts` asks for the preview as of a time; a cached preview is at most
        # an hour old, so the current one serves every ts. Still checked.
        _int_param(req, "ts", 0)
        return await self._previewer.preview(req.user.user_id, url)
