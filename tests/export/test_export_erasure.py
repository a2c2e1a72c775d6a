"""Exports and erasure: a room's export shows an erased user's messages and
state redacted (as to someone who was not in the room) unless a legal hold
covers them; `--include-redacted`, for compliance officers, keeps the original."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.legal_holds import LegalHoldStore
from tests.conftest import RunningServer
from tests.erasure.helpers import SECRET, TOPIC, erase_by_client, scene
from tests.export.scenario import check_manifest, read_lines
from tests.export.test_export_cli import run_in_thread


async def export_room(
    hs: RunningServer, capsys: pytest.CaptureFixture[str], room: str, out: Path, *extra: str
) -> tuple[dict[str, dict], dict[str, dict]]:
    """{event id: content} of the export's events and of its state."""
    code, _, err = await run_in_thread(hs, capsys, "export-room", room, "--out", str(out), *extra)
    assert code == 0, err
    check_manifest(out)
    events = {e["event_id"]: e["content"] for e in read_lines(out, "events.jsonl")}
    state = {e["event_id"]: e["content"] for e in read_lines(out, "state.jsonl")}
    return events, state


async def test_room_export_of_an_erased_user(
    hs: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    s = await scene(hs)
    await erase_by_client(s.alice)

    events, state = await export_room(hs, capsys, s.room, tmp_path / "plain")
    assert events[s.message] == {}
    assert state[s.topic] == {}
    assert SECRET not in (tmp_path / "plain" / "events.jsonl").read_text()
    # Others' messages are whole.
    assert {"msgtype": "m.text", "body": "hello all"} in events.values()

    events, state = await export_room(
        hs, capsys, s.room, tmp_path / "officer", "--include-redacted"
    )
    assert events[s.message]["body"] == SECRET
    assert state[s.topic] == {"topic": TOPIC}

    await LegalHoldStore(hs.pool).place("user", s.alice.user_id, "case 7", "@root:localhost")
    events, state = await export_room(hs, capsys, s.room, tmp_path / "held")
    assert events[s.message]["body"] == SECRET
    assert state[s.topic] == {"topic": TOPIC}
