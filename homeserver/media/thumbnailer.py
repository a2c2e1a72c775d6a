"""Thumbnails: the configured size closest to the request, made on first use
and then kept (a row in media_thumbnails, a file next to the content).

The choice follows Synapse, so clients get the sizes they expect: a crop
request gets the crop size of the closest aspect ratio that covers the
requested box if one does; a scale request gets the scale size closest in
area. Scaling never enlarges an image beyond its own size.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

import attrs

from homeserver.config import ThumbnailSize
from homeserver.errors import MatrixError, not_found
from homeserver.media import images
from homeserver.media.download import MediaDownloads, MediaFile
from homeserver.media.files import MediaFiles
from storage.media import MediaStore


def _unthumbnailable() -> MatrixError:
    # Synapse's answer when no thumbnail can exist for the media.
    return MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for this media")


@attrs.frozen
class Candidate:
    """A thumbnail this image can have: its real size and method."""

    width: int
    height: int
    method: str


def candidates(
    sizes: Sequence[ThumbnailSize], width: int, height: int, method: str
) -> list[Candidate]:
    """The thumbnails of the given method an image of this size can have."""
    found = []
    for size in sizes:
        if size.method != method:
            continue
        if method == "scale":
            w, h = images.fit(width, height, size.width, size.height)
        else:
            w, h = min(size.width, width), min(size.height, height)
        found.append(Candidate(w, h, method))
    return found


def choose(options: Sequence[Candidate], width: int, height: int) -> Candidate | None:
    """The best candidate for a request of width x height.

    Candidates at least as large as the request in one dimension come first;
    among them, crops are ranked by aspect ratio difference, then by whether
    they cover the whole box, then by area difference; scales by area
    difference alone.
    """

    def rank(c: Candidate) -> tuple[int, ...]:
        size = abs((width - c.width) * (height - c.height))
        if c.method == "crop":
            aspect = abs(width * c.height - height * c.width)
            covers = 0 if width <= c.width and height <= c.height else 1
            return (aspect, covers, size)
        return (size,)

    large = [c for c in options if c.width >= width or c.height >= height]
    pool = large or list(options)
    return min(pool, key=rank) if pool else None


class Thumbnailer:
    def __init__(
        self,
        store: MediaStore,
        files: MediaFiles,
        downloads: MediaDownloads,
        *,
        sizes: Sequence[ThumbnailSize],
        max_image_pixels: int,
    ) -> None:
        self._store = store
        self._files = files
        self._downloads = downloads
        self._sizes = tuple(sizes)
        self._max_pixels = max_image_pixels
        # One generation at a time per thumbnail; parallel requests wait for it.
        self._locks: weakref.WeakValueDictionary[tuple, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        *,
        width: int,
        height: int,
        method: str,
        animated: bool,
        timeout_ms: int,
        legacy: bool,
        allow_remote: bool = True,
    ) -> MediaFile:
        source = await self._downloads.find(
            server_name, media_id, timeout_ms=timeout_ms, legacy=legacy, allow_remote=allow_remote
        )
        source_type = source.content_type.split(";")[0].strip().lower()
        if source_type not in images.THUMBNAIL_SOURCE_TYPES:
            raise _unthumbnailable()
        try:
            image = await asyncio.to_thread(self._files.image_source, source.path)
            info = await asyncio.to_thread(images.probe, image, self._max_pixels)
        except (images.ImageError, OSError):
            raise _unthumbnailable() from None
        chosen = choose(candidates(self._sizes, info.width, info.height, method), width, height)
        if chosen is None:
            raise not_found("No thumbnail of this kind is available")
        animate = animated and info.animated
        content_type = images.ANIMATED_TYPE if animate else images.thumbnail_type(source_type)
        key = (source.sha256, chosen.width, chosen.height, method, content_type, animate)
        path = self._files.thumbnail_path(*key)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            if not await self._store.has_thumbnail(*key) or not path.exists():
                try:
                    data = await asyncio.to_thread(
                        images.render,
                        image,
                        chosen.width,
                        chosen.height,
                        method,
                        content_type,
                        animated=animate,
                        max_pixels=self._max_pixels,
                    )
                except (images.ImageError, OSError):
                    raise _unthumbnailable() from None
                await asyncio.to_thread(self._files.write_thumbnail, path, data)
                await self._store.add_thumbnail(*key, length=len(data))
        return MediaFile(
            path=path,
            content_type=content_type,
            upload_name=None,
            length=await asyncio.to_thread(self._files.stored_length, path),
            sha256=source.sha256,
        )
