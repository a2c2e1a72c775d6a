"""Exports page through everything by keyset: with pages of one record they hold
exactly what they hold with the default pages."""

from __future__ import annotations

from pathlib import Path

from homeserver.erasure.content import ErasedContent
from homeserver.export.exporter import Exporter, ExportRequest
from homeserver.rooms.format import EventFormatter
from storage.erasure import ErasureStore
from storage.export import ExportStore
from tests.conftest import RunningServer
from tests.export.checks import check_room_export, check_user_export
from tests.export.scenario import build, check_manifest, read_lines


class Counting:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        self.done += count


async def test_pages_of_one(hs: RunningServer, tmp_path: Path) -> None:
    s = await build(hs)
    exporter = Exporter(
        ExportStore(hs.pool, "localhost"),
        EventFormatter(hs.server.event_store),
        ErasedContent(ErasureStore(hs.pool), hs.server.state_store, hs.server.event_store),
        hs.server.media_files,
        "localhost",
        batch_size=1,
    )
    progress = Counting()
    await exporter.export(ExportRequest("user", s.alice), tmp_path / "user", progress)
    assert progress.done == progress.total > 0
    await check_user_export(hs, tmp_path / "user", s)

    progress = Counting()
    await exporter.export(ExportRequest("room", s.main_room), tmp_path / "room", progress)
    assert progress.done == progress.total > 0
    await check_room_export(hs, tmp_path / "room", s)


async def test_media_whose_bytes_were_purged(hs: RunningServer, tmp_path: Path) -> None:
    """A row whose file is gone from the store is listed without a file; the rest is exported."""
    s = await build(hs)
    media_id = s.unsent_mxc.rsplit("/", 1)[1]
    sha256 = await hs.pool.fetchval("SELECT sha256 FROM local_media WHERE media_id = $1", media_id)
    hs.server.media_files.remove_content(sha256)
    exporter = Exporter(
        ExportStore(hs.pool, "localhost"),
        EventFormatter(hs.server.event_store),
        ErasedContent(ErasureStore(hs.pool), hs.server.state_store, hs.server.event_store),
        hs.server.media_files,
        "localhost",
    )
    out = tmp_path / "user"
    await exporter.export(ExportRequest("user", s.alice), out, Counting())
    media = {m["mxc"]: m for m in read_lines(out, "media.jsonl")}
    assert media[s.unsent_mxc]["file"] is None
    assert media[s.image_mxc]["file"] == "media/" + s.image_mxc[len("mxc://") :]
    assert (out / media[s.image_mxc]["file"]).read_bytes() == s.image
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    check_manifest(out)
