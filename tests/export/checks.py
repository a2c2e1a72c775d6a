"""What a user's and a room's export must hold, checked against what the server
serves its clients for the scenario (tests/export/scenario.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import RunningServer
from tests.export.scenario import (
    REMOTE_MEDIA_ID,
    REMOTE_ORIGIN,
    Scenario,
    call,
    check_manifest,
    media_file,
    read_lines,
    room_timeline,
)

_COMPARED = ("event_id", "type", "sender", "room_id", "state_key", "content")


def _view(event: dict[str, Any]) -> dict[str, Any]:
    return {key: event.get(key) for key in _COMPARED}


def _check_redaction(events: list[dict[str, Any]], s: Scenario, include_redacted: bool) -> None:
    redacted = next(e for e in events if e["event_id"] == s.redacted_id)
    assert redacted["unsigned"]["redacted_because"]["content"]["reason"] == "wrong room"
    if include_redacted:
        assert redacted["content"]["body"] == s.redacted_body
    else:
        assert redacted["content"] == {}


def _no_redacted_text(root: Path, s: Scenario) -> None:
    """Redacted content is in no file of an export made without include_redacted."""
    for path in root.rglob("*"):
        if path.is_file():
            assert s.redacted_body.encode() not in path.read_bytes(), path


def _same_events(
    exported: list[dict[str, Any]],
    served: list[dict[str, Any]],
    s: Scenario,
    include_redacted: bool,
) -> None:
    """Exactly the served events, in order, as served (but for redacted originals)."""
    assert [e["event_id"] for e in exported] == [e["event_id"] for e in served]
    for mine, theirs in zip(exported, served, strict=True):
        if include_redacted and mine["event_id"] == s.redacted_id:
            continue
        assert _view(mine) == _view(theirs)
    _check_redaction(exported, s, include_redacted)


async def check_user_export(
    hs: RunningServer, root: Path, s: Scenario, *, include_redacted: bool = False
) -> dict[str, Any]:
    manifest = check_manifest(root)
    assert (manifest["kind"], manifest["target"]) == ("user", s.alice)
    assert manifest["include_redacted"] is include_redacted
    if not include_redacted:
        _no_redacted_text(root, s)

    profile = read_lines(root, "profile.json")[0]
    assert profile["user_id"] == s.alice
    assert profile["displayname"] == "Alice A."

    devices = read_lines(root, "devices.jsonl")
    whoami = await call(hs, s.alice_token, "GET", "/account/whoami")
    assert [d["device_id"] for d in devices] == [whoami["device_id"]]
    assert set(devices[0]) <= {
        "device_id",
        "display_name",
        "created_ts",
        "last_seen_ts",
        "last_seen_ip",
        "last_seen_user_agent",
    }

    account_data = read_lines(root, "account_data.jsonl")
    assert {"room_id": None, "type": "org.example.settings", "content": {"theme": "dark"}} in (
        account_data
    )
    assert {
        "room_id": s.main_room,
        "type": "org.example.pinned",
        "content": {"pinned": True},
    } in account_data

    served: list[dict[str, Any]] = []
    for room in (s.main_room, s.other_room):
        served += await room_timeline(hs, s.alice_token, room)
    served.sort(key=lambda e: e["origin_server_ts"])
    events = read_lines(root, "events.jsonl")
    events_by_time = sorted(events, key=lambda e: e["origin_server_ts"])
    _same_events(events_by_time, [e for e in served if e["sender"] == s.alice], s, include_redacted)
    bodies = [e["content"].get("body") for e in events if e["room_id"] == s.main_room]
    for _, body in s.alice_messages[:3]:
        assert body in bodies

    memberships = read_lines(root, "memberships.jsonl")
    assert sorted(e["event_id"] for e in memberships) == sorted(
        e["event_id"] for e in served if e["type"] == "m.room.member" and e["state_key"] == s.alice
    )

    media = read_lines(root, "media.jsonl")
    assert sorted(m["mxc"] for m in media) == sorted([s.image_mxc, s.unsent_mxc])
    assert media_file(root, s.image_mxc).read_bytes() == s.image
    assert media_file(root, s.unsent_mxc).read_bytes() == s.unsent_upload
    return manifest


async def check_room_export(
    hs: RunningServer, root: Path, s: Scenario, *, include_redacted: bool = False
) -> dict[str, Any]:
    manifest = check_manifest(root)
    assert (manifest["kind"], manifest["target"]) == ("room", s.main_room)
    assert manifest["include_redacted"] is include_redacted
    if not include_redacted:
        _no_redacted_text(root, s)
    assert read_lines(root, "room.json")[0]["room_id"] == s.main_room

    served = await room_timeline(hs, s.alice_token, s.main_room)
    events = read_lines(root, "events.jsonl")
    _same_events(events, served, s, include_redacted)
    assert s.bob_message in [e["event_id"] for e in events]

    state = read_lines(root, "state.jsonl")
    served_state = await call(hs, s.alice_token, "GET", f"/rooms/{s.main_room}/state")
    assert sorted(map(str, map(_view, state))) == sorted(map(str, map(_view, served_state)))

    memberships = read_lines(root, "memberships.jsonl")
    assert [e["event_id"] for e in memberships] == [
        e["event_id"] for e in served if e["type"] == "m.room.member"
    ]
    assert {e["state_key"] for e in memberships} == {s.alice, s.bob}

    media = read_lines(root, "media.jsonl")
    remote_mxc = f"mxc://{REMOTE_ORIGIN}/{REMOTE_MEDIA_ID}"
    assert sorted(m["mxc"] for m in media) == sorted([s.image_mxc, remote_mxc])
    assert media_file(root, s.image_mxc).read_bytes() == s.image
    assert media_file(root, remote_mxc).read_bytes() == s.remote_bytes
    assert not media_file(root, s.unsent_mxc).exists()
    return manifest
