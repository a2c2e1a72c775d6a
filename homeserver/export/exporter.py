"""Exporting a user's or a room's data, as clients saw it, to a directory.

The same exporter serves the command line (`homeserver export-user`,
`export-room`) and the admin API's background jobs (jobs.py). Events are read
a page at a time (one statement per page, storage/export.py), shaped by the
client API's formatter (redactions applied, unless the export is for a
compliance officer who asked for the originals), and appended to JSON lines
files; the media files they reference are copied through MediaFiles, so files
encrypted at rest are written decrypted. docs/export.md describes the result.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import attrs

from homeserver.erasure.content import ErasedContent
from homeserver.errors import not_found
from homeserver.export.writer import ExportWriter
from homeserver.identifiers import is_valid_server_name
from homeserver.media.files import MediaFiles
from homeserver.rooms.format import EventFormatter
from storage.events import StoredEvent
from storage.export import ExportStore, MediaRow

FORMAT = "homeserver-export"
FORMAT_VERSION = 1
BATCH_SIZE = 500
ExportKind = Literal["user", "room"]

# The spec's media id grammar; a reference outside it names no file we store.
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]+")


class Progress(Protocol):
    """Where an export reports how far it is (a terminal bar, a job's row)."""

    def set_total(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


@attrs.frozen
class ExportRequest:
    kind: ExportKind
    target: str
    include_redacted: bool = False


def mxc_references(content: Any) -> Iterator[tuple[str, str]]:
    """Every (origin, media id) an event's content names by an mxc:// URI, at any
    depth (url, info.thumbnail_url, file.url of encrypted files, avatar_url...)."""
    if isinstance(content, str):
        if content.startswith("mxc://"):
            origin, _, media_id = content[len("mxc://") :].partition("/")
            if is_valid_server_name(origin) and _MEDIA_ID.fullmatch(media_id):
                yield origin, media_id
    elif isinstance(content, dict):
        for value in content.values():
            yield from mxc_references(value)
    elif isinstance(content, list):
        for value in content:
            yield from mxc_references(value)


def media_file_name(row: MediaRow) -> str:
    return f"media/{row.origin}/{row.media_id}"


def _media_record(row: MediaRow, copied: bool) -> dict[str, Any]:
    return {
        "mxc": f"mxc://{row.origin}/{row.media_id}",
        "content_type": row.content_type,
        "upload_name": row.upload_name,
        "size": row.length,
        "sha256": row.sha256,
        "created_ts": row.created_ts,
        # None: the row remains but its bytes were purged from the store.
        "file": media_file_name(row) if copied else None,
    }


class Exporter:
    def __init__(
        self,
        store: ExportStore,
        formatter: EventFormatter,
        erased: ErasedContent,
        files: MediaFiles,
        server_name: str,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._store = store
        self._formatter = formatter
        self._erased = erased
        self._files = files
        self._server_name = server_name
        self._batch = batch_size

    async def check(self, request: ExportRequest) -> None:
        """404 M_NOT_FOUND unless the user (local) or room is known here."""
        if request.kind == "user":
            if not await self._store.user_exists(request.target):
                raise not_found(f"Unknown user {request.target}")
        elif await self._store.room(request.target) is None:
            raise not_found(f"Unknown room {request.target}")

    async def export(self, request: ExportRequest, out: Path, progress: Progress) -> None:
        """Write the export to `out` (absent or empty), manifest.json last."""
        await self.check(request)
        writer = await asyncio.to_thread(ExportWriter, out)
        started = int(time.time() * 1000)
        run = _Run(
            self._store,
            self._formatter,
            self._erased,
            self._files,
            self._batch,
            writer,
            request,
            progress,
        )
        try:
            if request.kind == "user":
                await run.user()
            else:
                await run.room()
        finally:
            await asyncio.to_thread(writer.close)
        parameters = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": request.kind,
            "target": request.target,
            "include_redacted": request.include_redacted,
            "server_name": self._server_name,
            "started_ts": started,
            "finished_ts": int(time.time() * 1000),
        }
        await asyncio.to_thread(writer.write_manifest, parameters)


class _Run:
    """One export being written."""

    def __init__(
        self,
        store: ExportStore,
        formatter: EventFormatter,
        erased: ErasedContent,
        files: MediaFiles,
        batch: int,
        writer: ExportWriter,
        request: ExportRequest,
        progress: Progress,
    ) -> None:
        self._store = store
        self._formatter = formatter
        self._erased = erased
        self._files = files
        self._batch = batch
        self._writer = writer
        self._request = request
        self._progress = progress
        # The (origin, media id) pairs already looked up: each file is copied once.
        self._media_seen: set[tuple[str, str]] = set()

    async def user(self) -> None:
        user_id = self._request.target
        store = self._store
        self._progress.set_total(await store.count_user(user_id))
        profile = await store.profile(user_id)
        await asyncio.to_thread(
            self._writer.write_json, "profile.json", {"user_id": user_id, **(profile or {})}
        )
        devices = await store.devices(user_id)
        await self._lines("devices.jsonl", [devices])
        await self._account_data(user_id)
        await self._events(
            "events.jsonl", lambda after: store.sent_events(user_id, after, self._batch)
        )
        await self._events(
            "memberships.jsonl", lambda after: store.memberships_of(user_id, after, self._batch)
        )
        await self._uploads(user_id)

    async def room(self) -> None:
        room_id = self._request.target
        store = self._store
        self._progress.set_total(await store.count_room(room_id))
        await asyncio.to_thread(self._writer.write_json, "room.json", await store.room(room_id))
        await asyncio.to_thread(self._writer.open_lines, "media.jsonl")
        await self._events(
            "events.jsonl",
            lambda after: store.room_events(room_id, after, self._batch),
            with_media=True,
        )
        await self._events(
            "memberships.jsonl",
            lambda after: store.room_memberships(room_id, after, self._batch),
        )
        await self._state(room_id)
        await asyncio.to_thread(self._writer.close_lines, "media.jsonl")

    async def _lines(self, name: str, batches: Sequence[Sequence[Any]]) -> None:
        await asyncio.to_thread(self._writer.open_lines, name)
        for batch in batches:
            await asyncio.to_thread(self._writer.append_lines, name, batch)
        await asyncio.to_thread(self._writer.close_lines, name)

    async def _client_events(
        self, events: list[StoredEvent], *, state: bool = False
    ) -> list[dict[str, Any]]:
        """Events as clients saw them; with include_redacted, redacted ones keep their
        original content (and still say, in unsigned.redacted_because, that they were).
        Without it, the events of erased users are redacted too, as for someone
        who was not in the room (unless a legal hold keeps them); with it, the
        compliance officer sees their original content."""
        if not self._request.include_redacted:
            erase = self._erased.apply_to_state if state else self._erased.apply
            events = await erase(None, events)
        shaped = await self._formatter.serialize(events, None, aggregations=False)
        if self._request.include_redacted:
            for stored, body in zip(events, shaped, strict=True):
                if "redacted_because" in body["unsigned"]:
                    body["content"] = stored.event.content
        return shaped

    async def _events(
        self,
        name: str,
        page: Callable[[int], Awaitable[list[StoredEvent]]],
        *,
        with_media: bool = False,
    ) -> None:
        await asyncio.to_thread(self._writer.open_lines, name)
        after = -(2**63)
        while True:
            events = await page(after)
            if not events:
                break
            after = events[-1].stream_ordering
            shaped = await self._client_events(events)
            await asyncio.to_thread(self._writer.append_lines, name, shaped)
            self._progress.advance(len(shaped))
            if with_media:
                await self._referenced_media(shaped)
        await asyncio.to_thread(self._writer.close_lines, name)

    async def _referenced_media(self, shaped: list[dict[str, Any]]) -> None:
        """Copy the stored files this batch's events name (once each), listed in media.jsonl."""
        refs = {ref for body in shaped for ref in mxc_references(body["content"])}
        refs -= self._media_seen
        self._media_seen |= refs
        await self._copy_media(await self._store.media(refs))

    async def _copy_media(self, rows: list[MediaRow]) -> None:
        files = self._files
        records = []
        for row in rows:
            copied = await asyncio.to_thread(
                self._writer.copy_media,
                media_file_name(row),
                files,
                files.content_path(row.sha256),
            )
            records.append(_media_record(row, copied))
        await asyncio.to_thread(self._writer.append_lines, "media.jsonl", records)

    async def _uploads(self, user_id: str) -> None:
        await asyncio.to_thread(self._writer.open_lines, "media.jsonl")
        after: tuple[int, str] = (-1, "")
        while True:
            rows = await self._store.uploads(user_id, after, self._batch)
            if not rows:
                break
            after = (rows[-1].created_ts, rows[-1].media_id)
            await self._copy_media(rows)
            self._progress.advance(len(rows))
        await asyncio.to_thread(self._writer.close_lines, "media.jsonl")

    async def _account_data(self, user_id: str) -> None:
        await asyncio.to_thread(self._writer.open_lines, "account_data.jsonl")
        after: tuple[str, str] | None = None
        while True:
            rows = await self._store.account_data(user_id, after, self._batch)
            if not rows:
                break
            after = (rows[-1][0], rows[-1][1])
            records = [
                {"room_id": room_id or None, "type": kind, "content": content}
                for room_id, kind, content in rows
            ]
            await asyncio.to_thread(self._writer.append_lines, "account_data.jsonl", records)
            self._progress.advance(len(records))
        await asyncio.to_thread(self._writer.close_lines, "account_data.jsonl")

    async def _state(self, room_id: str) -> None:
        await asyncio.to_thread(self._writer.open_lines, "state.jsonl")
        after: tuple[str, str] | None = None
        while True:
            page = await self._store.current_state(room_id, after, self._batch)
            if not page:
                break
            after = page[-1][0]
            shaped = await self._client_events([stored for _, stored in page], state=True)
            await asyncio.to_thread(self._writer.append_lines, "state.jsonl", shaped)
            self._progress.advance(len(shaped))
        await asyncio.to_thread(self._writer.close_lines, "state.jsonl")
