"""Exports page through everything by keyset: with pages of one record they hold
exactly what they hold with the default pages."""

from __future__ import annotations

from pathlib import Path

from homeserver.export.exporter import Exporter, ExportRequest
from homeserver.rooms.format import EventFormatter
from storage.export import ExportStore
from tests.conftest import RunningServer
from tests.export.checks import check_room_export, check_user_export
from tests.export.scenario import build


class Counting:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        assert count == 1
        self.done += count


async def test_pages_of_one(hs: RunningServer, tmp_path: Path) -> None:
    s = await build(hs)
    exporter = Exporter(
        ExportStore(hs.pool, "localhost"),
        EventFormatter(hs.server.event_store),
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
