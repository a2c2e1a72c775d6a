"""Media files on disk, named by the SHA-256 of their bytes.

    <root>/content/ab/cd/abcdef...        the bytes of every media with that hash
    <root>/thumbnails/ab/cd/abcdef.../    thumbnails made from it
    <root>/tmp/                           uploads being received

Identical uploads therefore share one file. An upload is streamed into tmp/
while it is hashed, never held in memory, and only moved into content/ once
its row is being committed (see storage/media.py for the locking).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable
from pathlib import Path

import attrs

from homeserver.errors import MatrixError

# A file in tmp/ untouched for this long belongs to no upload any more.
STALE_UPLOAD_S = 24 * 60 * 60


def too_large(limit: int) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", f"Cannot upload files larger than {limit} bytes")


@attrs.frozen
class ReceivedFile:
    """An upload written to a temporary file and hashed."""

    path: Path
    sha256: str
    length: int


class MediaFiles:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._tmp = root / "tmp"

    def prepare(self) -> None:
        """Create the directories and remove leftovers of interrupted uploads
        (only old ones: another process sharing the store may be receiving)."""
        for sub in ("content", "thumbnails", "tmp"):
            (self._root / sub).mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_UPLOAD_S
        for leftover in self._tmp.iterdir():
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink(missing_ok=True)

    def content_path(self, sha256: str) -> Path:
        return self._root / "content" / sha256[:2] / sha256[2:4] / sha256

    def thumbnail_dir(self, sha256: str) -> Path:
        return self._root / "thumbnails" / sha256[:2] / sha256[2:4] / sha256

    def thumbnail_path(
        self, sha256: str, width: int, height: int, method: str, content_type: str, animated: bool
    ) -> Path:
        kind = content_type.replace("/", "-")
        name = f"{width}-{height}-{method}-{kind}" + ("-animated" if animated else "")
        return self.thumbnail_dir(sha256) / name

    async def receive(self, chunks: AsyncIterable[bytes], max_size: int) -> ReceivedFile:
        """Stream chunks into a temporary file, hashing them on the way.

        Stops with 413 M_TOO_LARGE (and removes the file) as soon as more than
        `max_size` bytes have arrived. The file is flushed to disk before this
        returns, so a committed row never points at bytes still in a buffer.
        """
        path = self._tmp / secrets.token_hex(16)
        digest = hashlib.sha256()
        length = 0
        try:
            with path.open("wb") as f:
                async for chunk in chunks:
                    length += len(chunk)
                    if length > max_size:
                        raise too_large(max_size)
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return ReceivedFile(path, digest.hexdigest(), length)

    def receive_bytes(self, data: bytes) -> ReceivedFile:
        """Like `receive`, for bytes already in memory (URL preview images)."""
        path = self._tmp / secrets.token_hex(16)
        path.write_bytes(data)
        return ReceivedFile(path, hashlib.sha256(data).hexdigest(), len(data))

    def place(self, received: ReceivedFile) -> None:
        """Move a received file to its content path (replacing identical bytes)."""
        target = self.content_path(received.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(received.path, target)

    @staticmethod
    def discard(received: ReceivedFile) -> None:
        received.path.unlink(missing_ok=True)

    def remove_content(self, sha256: str) -> None:
        """Remove the bytes of a hash and every thumbnail made from them."""
        self.content_path(sha256).unlink(missing_ok=True)
        shutil.rmtree(self.thumbnail_dir(sha256), ignore_errors=True)

    def write_thumbnail(self, path: Path, data: bytes) -> None:
        """Write a thumbnail atomically: readers see the whole file or none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / secrets.token_hex(16)
        tmp.write_bytes(data)
        os.replace(tmp, path)
