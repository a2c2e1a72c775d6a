"""/sync with a filter's `event_format`: client format by default, the
signed PDU with `federation`; joined rooms always carry `ephemeral`."""

from __future__ import annotations

import json
from typing import Any

V3 = "/_matrix/client/v3"


async def sync_room(hs: Any, token: str, room_id: str, definition: dict[str, Any]) -> Any:
    status, got = await hs.request("GET", f"{V3}/sync?filter={json.dumps(definition)}", token=token)
    assert status == 200, got
    return got["rooms"]["join"][room_id]


async def test_federation_format_via_the_filter(hs):
    alice = (await hs.register("alice"))["access_token"]
    status, got = await hs.request("POST", f"{V3}/createRoom", token=alice, json={})
    room_id = got["room_id"]
    status, got = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t1", token=alice, json={"body": "hi"}
    )
    event_id = got["event_id"]

    room = await sync_room(
        hs, alice, room_id, {"event_format": "federation", "room": {"timeline": {"limit": 1}}}
    )
    assert room["ephemeral"] == {"events": []}
    (event,) = room["timeline"]["events"]
    assert event["event_id"] == event_id
    assert event["room_id"] == room_id
    assert event["content"] == {"body": "hi"}
    assert event["unsigned"]["transaction_id"] == "t1"
    for key in ("prev_events", "auth_events", "depth", "hashes", "signatures", "origin_server_ts"):
        assert key in event, key

    room = await sync_room(hs, alice, room_id, {"room": {"timeline": {"limit": 1}}})
    (event,) = room["timeline"]["events"]
    assert event["event_id"] == event_id
    for key in ("room_id", "prev_events", "auth_events", "hashes", "signatures"):
        assert key not in event, key
