"""Jump to date on one server (`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`)
over real HTTP: the closest event either way, who may ask, and bad input."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"


async def send(hs: Any, token: str, room: str, text: str, txn: str) -> dict[str, Any]:
    """Send a message; the event as /event shows it (with its origin_server_ts)."""
    status, sent = await hs.request(
        "PUT",
        f"{V3}/rooms/{room}/send/m.room.message/{txn}",
        token=token,
        json={"msgtype": "m.text", "body": text},
    )
    assert status == 200, sent
    status, event = await hs.request(
        "GET", f"{V3}/rooms/{room}/event/{quote(sent['event_id'])}", token=token
    )
    assert status == 200, event
    return event


async def lookup(hs: Any, token: str | None, room: str, query: str) -> tuple[int, Any]:
    return await hs.request("GET", f"{V1}/rooms/{room}/timestamp_to_event?{query}", token=token)


@pytest.fixture
async def room(hs: Any) -> dict[str, Any]:
    alice = (await hs.register("alice"))["access_token"]
    status, created = await hs.request(
        "POST", f"{V3}/createRoom", token=alice, json={"preset": "private_chat"}
    )
    assert status == 200, created
    room_id = created["room_id"]
    events = [await send(hs, alice, room_id, f"m{n}", f"t{n}") for n in range(3)]
    return {"token": alice, "room_id": room_id, "events": events}


async def test_closest_event_in_either_direction(hs, room):
    token, room_id, events = room["token"], room["room_id"], room["events"]
    first, last = events[0], events[-1]
    status, body = await lookup(hs, token, room_id, f"ts={first['origin_server_ts']}&dir=f")
    assert status == 200, body
    # At or after the time: the first message (or an earlier one of the same ms).
    assert body["origin_server_ts"] == first["origin_server_ts"]
    status, body = await lookup(hs, token, room_id, f"ts={last['origin_server_ts'] + 10**6}&dir=b")
    assert status == 200, body
    assert body == {"event_id": last["event_id"], "origin_server_ts": last["origin_server_ts"]}
    # Before the room existed, going forwards: its first event, the create event.
    status, body = await lookup(hs, token, room_id, "ts=0&dir=f")
    assert status == 200, body
    status, create = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/event/{quote(body['event_id'])}", token=token
    )
    assert create["type"] == "m.room.create"
    # Nothing before the room existed, nor after its last event.
    for query in ("ts=0&dir=b", f"ts={last['origin_server_ts'] + 10**6}&dir=f"):
        status, body = await lookup(hs, token, room_id, query)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), query


async def test_who_may_ask(hs, room):
    room_id = room["room_id"]
    bob = (await hs.register("bob"))["access_token"]
    status, body = await lookup(hs, bob, room_id, "ts=0&dir=f")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await lookup(hs, None, room_id, "ts=0&dir=f")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    # A world-readable room: anyone signed in may.
    status, _ = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/state/m.room.history_visibility/",
        token=room["token"],
        json={"history_visibility": "world_readable"},
    )
    assert status == 200
    status, body = await lookup(hs, bob, room_id, "ts=0&dir=f")
    assert status == 200, body


async def test_bad_parameters(hs, room):
    for query, errcode in (
        ("dir=f", "M_MISSING_PARAM"),
        ("ts=1", "M_MISSING_PARAM"),
        ("ts=-1&dir=f", "M_INVALID_PARAM"),
        ("ts=abc&dir=f", "M_INVALID_PARAM"),
        ("ts=99999999999999999999&dir=f", "M_INVALID_PARAM"),
        ("ts=1&dir=x", "M_INVALID_PARAM"),
    ):
        status, body = await lookup(hs, room["token"], room["room_id"], query)
        assert (status, body["errcode"]) == (400, errcode), query
