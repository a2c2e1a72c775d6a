"""`homeserver media-key ...`: make, rotate and apply the media master key.

Rotation re-wraps each file's key in its header (encryption.rewrap) and never
re-encrypts content, so it runs in the time it takes to touch every file's
first sector. It is safe to run again after an interruption: a file already
under the new key is left as it is. The key check file is done last, so a
server started with the new key before every file was done refuses to start.
Run it with the server stopped; start the server with the new key after it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from homeserver.config import Config
from homeserver.media.encryption import (
    MAGIC,
    EncryptingWriter,
    MasterKey,
    MediaKeyError,
    is_encrypted,
    key_id_of,
    load_master_key,
    rewrap,
)
from homeserver.media.files import MediaFiles

_PIECE = 1024 * 1024


def media_master_key(config: Config) -> MasterKey | None:
    """The configured master key (None when media encryption is off)."""
    encryption = config.media.encryption
    if not encryption.enabled:
        return None
    path = encryption.master_key_path
    return load_master_key(config.path(path) if path else None, encryption.master_key_env)


def write_new_key(path: Path) -> None:
    """A new random master key in a file only its owner can read; never overwrites."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(MasterKey.generate().encoded() + "\n")


def _stored_files(root: Path) -> Iterator[Path]:
    for sub in ("content", "thumbnails"):
        for directory, _, names in os.walk(root / sub):
            for name in names:
                yield Path(directory) / name


def rotate(root: Path, old: MasterKey, new: MasterKey) -> int:
    """Re-wrap every file of the store under `new`; returns how many were re-wrapped."""
    check = MediaFiles(root, old).key_check_path
    if not check.exists():
        raise MediaKeyError(f"{root} has no key check file: it is not an encrypted media store")
    store_key = key_id_of(check)
    if store_key == new.key_id:
        return 0
    if store_key != old.key_id:
        raise MediaKeyError(f"the media store {root} is not encrypted under the old key given")
    done = 0
    for path in _stored_files(root):
        if rewrap(path, [old, new], new):
            done += 1
    rewrap(check, [old], new)
    return done


def encrypt_existing(root: Path, master: MasterKey) -> int:
    """Encrypt the plaintext files stored before encryption was on; returns how many.

    Each file is replaced atomically by its encrypted copy (same name: names
    are hashes of the plaintext), so the server may keep running meanwhile.
    """
    files = MediaFiles(root, master)
    files.prepare()
    done = 0
    for path in _stored_files(root):
        with path.open("rb") as f:
            if is_encrypted(f.read(len(MAGIC))):
                continue
        tmp = root / "tmp" / secrets.token_hex(16)
        with path.open("rb") as plain, tmp.open("wb") as out:
            writer = EncryptingWriter(out, master)
            while piece := plain.read(_PIECE):
                writer.write(piece)
            writer.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        done += 1
    return done
