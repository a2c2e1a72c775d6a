"""Answering with a media file read through MediaFiles, for stores encrypted at rest.

A plaintext store is served with aiohttp's FileResponse (sendfile, ranges,
conditional requests). An encrypted file must be decrypted on the way out, so
it is streamed from here instead, with single byte ranges (what players and
download managers ask for) answered as 206 by decrypting only the segments
that hold the range; any other Range header is ignored, as RFC 9110 allows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from homeserver.errors import MatrixError, not_found
from homeserver.media.encryption import MediaKeyError
from homeserver.media.files import MediaFiles, StoredFile

logger = logging.getLogger(__name__)

_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


async def open_stored(files: MediaFiles, path: Path) -> StoredFile:
    """Open a stored file, or the Matrix error for a file that is gone or unreadable."""
    try:
        return await asyncio.to_thread(files.open, path)
    except FileNotFoundError:
        raise not_found("Not found") from None
    except (OSError, MediaKeyError) as e:
        # A file that fails authentication was changed on disk or made under
        # another key: the administrator's problem, never the requester's data.
        logger.error("media file %s cannot be read: %s", path, e)
        raise MatrixError(500, "M_UNKNOWN", "The media file cannot be read") from None


def byte_range(header: str | None, length: int) -> tuple[int, int] | None | bool:
    """The [start, stop) a Range header asks for; None to send the whole file;
    False when the range cannot be satisfied (416)."""
    if header is None:
        return None
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0:
            return False
        return max(length - suffix, 0), length
    start = int(first)
    stop = length if last == "" else min(int(last) + 1, length)
    if start >= length or stop <= start:
        return False
    return start, stop


class StoredFileResponse(web.StreamResponse):
    """The plaintext of an open StoredFile (closed once sent), whole or one range."""

    def __init__(
        self, stored: StoredFile, headers: Mapping[str, str], range_header: str | None
    ) -> None:
        super().__init__(headers=dict(headers))
        self._stored = stored
        self.headers["Accept-Ranges"] = "bytes"
        wanted = byte_range(range_header, stored.length)
        self._first, self._end = 0, stored.length
        if wanted is False:
            self.set_status(416)
            self.headers["Content-Range"] = f"bytes */{stored.length}"
            self._end = 0
        elif wanted is not None:
            self._first, self._end = wanted
            self.set_status(206)
            self.headers["Content-Range"] = f"bytes {self._first}-{self._end - 1}/{stored.length}"
        self.content_length = self._end - self._first

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            if request.method != "HEAD":
                pieces = self._stored.read_range(self._first, self._end)
                while piece := await asyncio.to_thread(next, pieces, b""):
                    await self.write(piece)
        finally:
            await asyncio.to_thread(self._stored.close)
        return writer
