"""Media files encrypted at rest, so that whoever gets the disks cannot read them.

Each file has a key of its own, kept in the file's header wrapped (RFC 3394
AES key wrap) by the master key named in the config. Rotating the master key
re-wraps those 40 header bytes in place; the content is never re-encrypted.

Layout of an encrypted file (integers big-endian):

    header, 64 bytes:  MAGIC (8) | master key id (8) | wrapped file key (40) | zeros (8)
    body:              the plaintext in segments of SEGMENT bytes, each sealed
                       with AES-256-GCM under the file key

A segment's nonce is its index (8 bytes) followed by a last-segment flag (4
bytes): the "STREAM" construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015),
so segments cannot be reordered, dropped or the file cut short unnoticed, and
any byte range decrypts by reading only the segments that hold it (HTTP range
requests, thumbnailing). Nonces never repeat because every file, including
each thumbnail, gets a fresh random key. The primitives are the
`cryptography` package's; nothing here is a cipher of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    pass

# `cryptography` is imported where a key is used, not here: a server without
# media encryption never loads it (it costs several MB of memory; see the
# lazy imports of homeserver/keyfiles.py).

MAGIC = b"HSMEDIA\x01"
HEADER_SIZE = 64
SEGMENT = 64 * 1024
_TAG = 16
_SEALED_SEGMENT = SEGMENT + _TAG
_KEY_ID_SIZE = 8
_WRAPPED_SIZE = 40


class MediaKeyError(Exception):
    """The master key is missing, malformed, or not the one the files were made with."""


class CorruptMediaError(OSError):
    """An encrypted file failed authentication: changed, cut short, or not ours.

    An OSError, so that readers treat it as they treat an unreadable file.
    """


class MasterKey:
    """The key that wraps every file key: 32 random bytes."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise MediaKeyError(f"a media master key is 32 bytes, not {len(key)}")
        self._key = key
        # Names the key in headers without revealing it, so that a file made
        # under another key is told apart from a corrupt one.
        self.key_id = hashlib.sha256(b"homeserver media master key id\0" + key).digest()[
            :_KEY_ID_SIZE
        ]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(32))

    def encoded(self) -> str:
        """The form key files and environment variables hold: standard base64."""
        return base64.b64encode(self._key).decode()

    @classmethod
    def decode(cls, text: str, source: str) -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MediaKeyError(f"{source}: the media master key is not base64") from None
        try:
            return cls(raw)
        except MediaKeyError as e:
            raise MediaKeyError(f"{source}: {e}") from None

    def wrap(self, file_key: bytes) -> bytes:
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap

        return aes_key_wrap(self._key, file_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

        try:
            return aes_key_unwrap(self._key, wrapped)
        except InvalidUnwrap:
            raise CorruptMediaError("the file key does not unwrap under the master key") from None


def load_master_key(key_file: Path | None, env_var: str | None) -> MasterKey:
    """The master key from the file or environment variable the config names."""
    if key_file is not None:
        try:
            text = key_file.read_text()
        except OSError as e:
            raise MediaKeyError(f"cannot read the media master key file {key_file}: {e}") from None
        return MasterKey.decode(text, str(key_file))
    if env_var is not None:
        text = os.environ.get(env_var)
        if not text:
            raise MediaKeyError(f"the environment variable {env_var} (media master key) is not set")
        return MasterKey.decode(text, f"${env_var}")
    raise MediaKeyError("media encryption is on but no master key file or variable is named")


def _nonce(index: int, last: bool) -> bytes:
    return struct.pack(">QI", index, 1 if last else 0)


def is_encrypted(head: bytes) -> bool:
    """Whether a file starting with `head` (its first 8 bytes) is one of ours."""
    return head[: len(MAGIC)] == MAGIC


class EncryptingWriter:
    """Writes plaintext given in any pieces as an encrypted file to `out`."""

    def __init__(self, out: BinaryIO, master: MasterKey) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        file_key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(file_key)
        self._out = out
        self._buffer = bytearray()
        self._index = 0
        out.write(_header(master.key_id, master.wrap(file_key)))

    def write(self, data: bytes) -> None:
        self._buffer += data
        # A segment is sealed only once more data follows it: the last one
        # must carry the last-segment flag, and only close() knows which it is.
        while len(self._buffer) > SEGMENT:
            self._seal(bytes(self._buffer[:SEGMENT]), last=False)
            del self._buffer[:SEGMENT]

    def close(self) -> None:
        """Seal the last segment (possibly empty). The caller flushes and closes `out`."""
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, segment: bytes, *, last: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._index, last), segment, None))
        self._index += 1


def _header(key_id: bytes, wrapped: bytes) -> bytes:
    assert len(key_id) == _KEY_ID_SIZE and len(wrapped) == _WRAPPED_SIZE
    return MAGIC + key_id + wrapped + bytes(HEADER_SIZE - len(MAGIC) - _KEY_ID_SIZE - _WRAPPED_SIZE)


def _parse_header(header: bytes) -> tuple[bytes, bytes]:
    if len(header) != HEADER_SIZE or not is_encrypted(header):
        raise CorruptMediaError("not an encrypted media file")
    key_id = header[len(MAGIC) : len(MAGIC) + _KEY_ID_SIZE]
    wrapped = header[len(MAGIC) + _KEY_ID_SIZE : len(MAGIC) + _KEY_ID_SIZE + _WRAPPED_SIZE]
    return key_id, wrapped


class DecryptingReader:
    """Random access to the plaintext of an open encrypted file."""

    def __init__(self, handle: BinaryIO, master: MasterKey) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._handle = handle
        handle.seek(0)
        key_id, wrapped = _parse_header(handle.read(HEADER_SIZE))
        if key_id != master.key_id:
            raise CorruptMediaError("the file was encrypted under another media master key")
        self._aead = AESGCM(master.unwrap(wrapped))
        body = os.fstat(handle.fileno()).st_size - HEADER_SIZE
        self._segments = max(1, -(-body // _SEALED_SEGMENT))
        self.length = body - self._segments * _TAG
        if self.length < 0:
            raise CorruptMediaError("the encrypted file is cut short")

    def read_range(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The plaintext bytes [start, stop), a segment at a time, each checked."""
        stop = self.length if stop is None else min(stop, self.length)
        if start >= stop:
            # Still authenticate something: an empty read of a forged file must fail too.
            if self.length == 0:
                self._open_segment(0)
            return
        for index in range(start // SEGMENT, (stop - 1) // SEGMENT + 1):
            plain = self._open_segment(index)
            base = index * SEGMENT
            yield plain[max(start - base, 0) : stop - base]

    def _open_segment(self, index: int) -> bytes:
        self._handle.seek(HEADER_SIZE + index * _SEALED_SEGMENT)
        sealed = self._handle.read(_SEALED_SEGMENT)
        from cryptography.exceptions import InvalidTag

        last = index == self._segments - 1
        try:
            return self._aead.decrypt(_nonce(index, last), sealed, None)
        except InvalidTag:
            raise CorruptMediaError(
                f"segment {index} of an encrypted file is not authentic"
            ) from None


def key_id_of(path: Path) -> bytes | None:
    """The id of the master key an encrypted file is wrapped under; None if plaintext."""
    with path.open("rb") as f:
        header = f.read(HEADER_SIZE)
    if not is_encrypted(header):
        return None
    return _parse_header(header)[0]


def rewrap(path: Path, current: list[MasterKey], new: MasterKey) -> bool:
    """Re-wrap the file key of `path` under `new`, in place; False for a plaintext file.

    `current` are the keys the file may be wrapped under (the old one, and the
    new one for a file already done by an interrupted rotation). Only the
    header's key id and wrapped key change, in one write of 48 bytes within
    the first disk sector, flushed before this returns.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        header = os.pread(fd, HEADER_SIZE, 0)
        if not is_encrypted(header):
            return False
        key_id, wrapped = _parse_header(header)
        for key in current:
            if key.key_id == key_id:
                file_key = key.unwrap(wrapped)
                break
        else:
            raise MediaKeyError(
                f"{path} is wrapped under a key that is neither the old nor the new"
            )
        if key_id == new.key_id:
            return True
        os.pwrite(fd, _header(new.key_id, new.wrap(file_key)), 0)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
