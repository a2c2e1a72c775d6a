"""Reporting events and rooms: what is stored, and who gets a 404."""

from __future__ import annotations

from typing import Any

import pytest

V3 = "/_matrix/client/v3"


@pytest.fixture
async def room(hs: Any) -> dict[str, Any]:
    """Alice's public room with Bob in it and a message from Bob; Mallory is outside."""
    alice = (await hs.register("alice"))["access_token"]
    bob = (await hs.register("bob"))["access_token"]
    mallory = (await hs.register("mallory"))["access_token"]
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=alice, json={"preset": "public_chat"}
    )
    assert status == 200
    room_id = body["room_id"]
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=bob)
    assert status == 200
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/1",
        token=bob,
        json={"msgtype": "m.text", "body": "buy cheap watches"},
    )
    assert status == 200
    return {
        "alice": alice,
        "bob": bob,
        "mallory": mallory,
        "room_id": room_id,
        "event_id": body["event_id"],
    }


async def _event_reports(hs: Any) -> list[dict[str, Any]]:
    rows = await hs.pool.fetch(
        "SELECT room_id, event_id, user_id, reason, score FROM event_reports ORDER BY id"
    )
    return [dict(r) for r in rows]


async def test_report_event_stores_reason_and_score(hs, room):
    path = f"{V3}/rooms/{room['room_id']}/report/{room['event_id']}"
    status, body = await hs.request(
        "POST", path, token=room["alice"], json={"reason": "spam", "score": -100}
    )
    assert (status, body) == (200, {})
    status, body = await hs.request("POST", path, token=room["alice"], json={})
    assert (status, body) == (200, {})
    assert await _event_reports(hs) == [
        {
            "room_id": room["room_id"],
            "event_id": room["event_id"],
            "user_id": "@alice:localhost",
            "reason": "spam",
            "score": -100,
        },
        {
            "room_id": room["room_id"],
            "event_id": room["event_id"],
            "user_id": "@alice:localhost",
            "reason": None,
            "score": None,
        },
    ]


async def test_report_unknown_or_unseen_events_is_404(hs, room):
    alice, room_id = room["alice"], room["room_id"]
    cases = [
        (alice, f"{V3}/rooms/{room_id}/report/$nope"),
        (alice, f"{V3}/rooms/!unknown:localhost/report/{room['event_id']}"),
        # Not joined: the same answer as for an event that does not exist.
        (room["mallory"], f"{V3}/rooms/{room_id}/report/{room['event_id']}"),
    ]
    status, body = await hs.request("POST", f"{V3}/createRoom", token=alice, json={})
    other_room = body["room_id"]
    cases.append((alice, f"{V3}/rooms/{other_room}/report/{room['event_id']}"))
    for token, path in cases:
        status, body = await hs.request("POST", path, token=token, json={"reason": "x"})
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path
    status, _ = await hs.request("POST", f"{V3}/rooms/{room_id}/leave", token=room["bob"])
    status, body = await hs.request(
        "POST",
        f"{V3}/rooms/{room_id}/report/{room['event_id']}",
        token=room["bob"],
        json={"reason": "x"},
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert await _event_reports(hs) == []


@pytest.mark.parametrize(
    "body",
    [{"score": 5}, {"score": -101}, {"score": "bad"}, {"score": True}, {"reason": 3}],
)
async def test_report_event_bad_input_changes_nothing(hs, room, body):
    status, resp = await hs.request(
        "POST",
        f"{V3}/rooms/{room['room_id']}/report/{room['event_id']}",
        token=room["alice"],
        json=body,
    )
    assert (status, resp["errcode"]) == (400, "M_BAD_JSON")
    assert await _event_reports(hs) == []


async def test_report_room(hs, room):
    # The reporter need not be in the room.
    status, body = await hs.request(
        "POST",
        f"{V3}/rooms/{room['room_id']}/report",
        token=room["mallory"],
        json={"reason": "scam room"},
    )
    assert (status, body) == (200, {})
    rows = await hs.pool.fetch("SELECT room_id, user_id, reason FROM room_reports")
    assert [dict(r) for r in rows] == [
        {"room_id": room["room_id"], "user_id": "@mallory:localhost", "reason": "scam room"}
    ]
    status, body = await hs.request(
        "POST", f"{V3}/rooms/!unknown:localhost/report", token=room["alice"], json={"reason": "x"}
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await hs.request(
        "POST", f"{V3}/rooms/{room['room_id']}/report", token=room["alice"], json={}
    )
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await hs.request(
        "POST", f"{V3}/rooms/{room['room_id']}/report", json={"reason": "x"}
    )
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    assert await hs.pool.fetchval("SELECT count(*) FROM room_reports") == 1
