"""Media files on disk, named by the SHA-256 of their bytes.

    <root>/content/ab/cd/abcdef...        the bytes of every media with that hash
    <root>/thumbnails/ab/cd/abcdef.../    thumbnails made from it
    <root>/tmp/                           uploads being received
    <root>/key_check                      with encryption: proves the master key

Identical uploads therefore share one file. An upload is streamed into tmp/
while it is hashed, never held in memory, and only moved into content/ once
its row is being committed (see storage/media.py for the locking).

With a master key (media.encryption), every file written here is encrypted
(encryption.py) and read back through `open`; plaintext files written before
encryption was turned on stay readable. File names remain the SHA-256 of the
plaintext, which tells someone holding the disks whether a file they already
have is stored, but nothing of any other file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable, Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from homeserver.errors import MatrixError
from homeserver.media.encryption import (
    MAGIC,
    DecryptingReader,
    EncryptingWriter,
    MasterKey,
    MediaKeyError,
    is_encrypted,
)

# A file in tmp/ untouched for this long belongs to no upload any more.
STALE_UPLOAD_S = 24 * 60 * 60
_READ_SIZE = 256 * 1024
_KEY_CHECK = b"homeserver media key check"


def too_large(limit: int) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", f"Cannot upload files larger than {limit} bytes")


@attrs.frozen
class ReceivedFile:
    """An upload written to a temporary file and hashed."""

    path: Path
    sha256: str
    length: int


class StoredFile:
    """An open media file read as its plaintext, whether stored encrypted or not."""

    def __init__(self, handle: BinaryIO, master: MasterKey | None) -> None:
        self._handle = handle
        self._decrypting: DecryptingReader | None = None
        if is_encrypted(handle.read(len(MAGIC))):
            if master is None:
                handle.close()
                raise MediaKeyError("an encrypted media file, and no media master key")
            try:
                self._decrypting = DecryptingReader(handle, master)
            except BaseException:
                handle.close()
                raise
            self.length = self._decrypting.length
        else:
            self.length = os.fstat(handle.fileno()).st_size

    def read_range(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes [start, stop) of the plaintext, in pieces of a few hundred KiB."""
        if self._decrypting is not None:
            yield from self._decrypting.read_range(start, stop)
            return
        stop = self.length if stop is None else min(stop, self.length)
        self._handle.seek(start)
        while start < stop:
            piece = self._handle.read(min(_READ_SIZE, stop - start))
            if not piece:
                return
            start += len(piece)
            yield piece

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> StoredFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MediaFiles:
    def __init__(self, root: Path, master: MasterKey | None = None) -> None:
        self._root = root
        self._tmp = root / "tmp"
        self._master = master

    @property
    def encrypted(self) -> bool:
        return self._master is not None

    def prepare(self) -> None:
        """Create the directories, check the master key against the store, and
        remove leftovers of interrupted uploads (only old ones: another
        process sharing the store may be receiving).

        Raises MediaKeyError when the store was encrypted under another master
        key, or is encrypted and no key is configured: serving it would fail
        on every download, so the server must not start.
        """
        for sub in ("content", "thumbnails", "tmp"):
            (self._root / sub).mkdir(parents=True, exist_ok=True)
        self._check_key()
        cutoff = time.time() - STALE_UPLOAD_S
        for leftover in self._tmp.iterdir():
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink(missing_ok=True)

    @property
    def key_check_path(self) -> Path:
        return self._root / "key_check"

    def _check_key(self) -> None:
        check = self.key_check_path
        if not check.exists():
            if self._master is not None:
                self._write_atomically(check, _KEY_CHECK)
            return
        if self._master is None:
            raise MediaKeyError(
                f"the media store {self._root} is encrypted, but media.encryption names no "
                "master key: configure the key it was encrypted with"
            )
        try:
            with self.open(check) as stored:
                content = b"".join(stored.read_range())
        except OSError:
            content = None
        if content != _KEY_CHECK:
            raise MediaKeyError(
                f"the media master key is not the one the media store {self._root} was "
                "encrypted with (a wrong key file or variable?)"
            )

    def open(self, path: Path) -> StoredFile:
        """Open a stored file for reading its plaintext (blocking: call in a thread)."""
        return StoredFile(path.open("rb"), self._master)

    def read_all(self, path: Path) -> bytes:
        with self.open(path) as stored:
            return b"".join(stored.read_range())

    def image_source(self, path: Path) -> Path | bytes:
        """What the image functions read: the path of a plaintext file, else its bytes."""
        if self._master is None:
            return path
        return self.read_all(path)

    def stored_length(self, path: Path) -> int:
        with self.open(path) as stored:
            return stored.length

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
                sink = EncryptingWriter(f, self._master) if self._master else f
                async for chunk in chunks:
                    length += len(chunk)
                    if length > max_size:
                        raise too_large(max_size)
                    digest.update(chunk)
                    sink.write(chunk)
                if isinstance(sink, EncryptingWriter):
                    sink.close()
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return ReceivedFile(path, digest.hexdigest(), length)

    def receive_bytes(self, data: bytes) -> ReceivedFile:
        """Like `receive`, for bytes already in memory (URL preview images)."""
        path = self._tmp / secrets.token_hex(16)
        self.write_new(path, data)
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
        self._write_atomically(path, data)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / secrets.token_hex(16)
        self.write_new(tmp, data)
        os.replace(tmp, path)

    def write_new(self, path: Path, data: bytes) -> None:
        """Write `data` to a new file, encrypted when the store is."""
        with path.open("wb") as f:
            if self._master is None:
                f.write(data)
            else:
                writer = EncryptingWriter(f, self._master)
                writer.write(data)
                writer.close()
