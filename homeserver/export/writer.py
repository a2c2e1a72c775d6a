"""The export directory: files written once, each hashed as it is written, and
the manifest listing them with their SHA-256 and size.

Writes are blocking file I/O: the exporter calls them through
`asyncio.to_thread` a batch at a time, so the server's loop stays free.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from homeserver.media.files import MediaFiles

MANIFEST = "manifest.json"


class ExportDirError(Exception):
    """The output directory cannot be used (it holds files already)."""


@attrs.frozen
class WrittenFile:
    path: str
    sha256: str
    size: int

    def json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class _HashedFile:
    """A file being written, with the SHA-256 and length of what went in."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class ExportWriter:
    def __init__(self, root: Path) -> None:
        """`root` must not exist or be an empty directory: an export never mixes
        with other files, so the manifest describes the whole directory."""
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ExportDirError(f"{root} exists and is not an empty directory")
        # Only its owner may read it: it holds people's messages and files.
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = root
        self._files: dict[str, WrittenFile] = {}
        self._open: dict[str, _HashedFile] = {}
        self._handles: dict[str, BinaryIO] = {}

    def _start(self, name: str) -> _HashedFile:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("xb")
        self._handles[name] = handle
        self._open[name] = _HashedFile(handle)
        return self._open[name]

    def _finish(self, name: str) -> None:
        hashed = self._open.pop(name)
        handle = self._handles.pop(name)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._files[name] = WrittenFile(name, hashed.sha256, hashed.size)

    def append_lines(self, name: str, records: Iterable[Any]) -> None:
        """Append JSON lines to `name` (created empty by `open_lines`)."""
        hashed = self._open[name]
        for record in records:
            hashed.write(_dumps(record) + b"\n")

    def open_lines(self, name: str) -> None:
        self._start(name)

    def close_lines(self, name: str) -> None:
        self._finish(name)

    def write_json(self, name: str, value: Any) -> None:
        self._start(name).write(_dumps(value) + b"\n")
        self._finish(name)

    def copy_media(self, name: str, files: MediaFiles, source: Path) -> bool:
        """Copy a stored media file's plaintext (decrypted when encrypted at rest);
        False, writing nothing, when its bytes are gone from the store (purged
        by retention or an admin while its row remained)."""
        try:
            stored = files.open(source)
        except FileNotFoundError:
            return False
        with stored:
            hashed = self._start(name)
            try:
                for piece in stored.read_range():
                    hashed.write(piece)
            finally:
                self._finish(name)
        return True

    def close(self) -> None:
        """Close what an interrupted export left open (its files stay, unlisted)."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        self._open.clear()

    def write_manifest(self, parameters: dict[str, Any]) -> None:
        """manifest.json: the export's parameters and every other file of the directory."""
        manifest = {
            **parameters,
            "files": [f.json() for f in sorted(self._files.values(), key=lambda f: f.path)],
        }
        path = self.root / MANIFEST
        path.write_bytes(json.dumps(manifest, ensure_ascii=False, indent=2).encode() + b"\n")
