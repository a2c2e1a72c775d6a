"""matrix-js-sdk's jump to date (`timestampToEvent`, which Element's
/jumptodate calls) against our server: the stable v1 path answers, so js-sdk
never falls back to MSC3030's unstable one, and the events it gets are the
closest ones on each side of the time (tests/interop/js/jump_to_date_flow.mjs)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.interop.node_script import JS_DIR, run_node_script
from tests.test_timestamp_to_event import send

V3 = "/_matrix/client/v3"


async def test_js_sdk_jumps_to_a_date(hs: Any) -> None:
    alice = await hs.register("alice")
    token = alice["access_token"]
    status, created = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"preset": "private_chat"}
    )
    assert status == 200, created
    room_id = created["room_id"]
    before = await send(hs, token, room_id, "before", "t1")
    await asyncio.sleep(0.05)
    after = await send(hs, token, room_id, "after", "t2")
    # A time strictly between the two messages.
    between = before["origin_server_ts"] + 1
    assert between < after["origin_server_ts"]

    result = await run_node_script(
        JS_DIR / "jump_to_date_flow.mjs",
        hs.url,
        alice["user_id"],
        alice["device_id"],
        token,
        room_id,
        str(between),
    )
    assert "error" not in result, result
    assert result["forward"] == {
        "event_id": after["event_id"],
        "origin_server_ts": after["origin_server_ts"],
    }
    assert result["backward"] == {
        "event_id": before["event_id"],
        "origin_server_ts": before["origin_server_ts"],
    }
    assert result["after_last"] == {"httpStatus": 404, "errcode": "M_NOT_FOUND"}
    assert result["requests"]
    assert all("/_matrix/client/v1/rooms/" in url for url in result["requests"])
    assert not any("msc3030" in url for url in result["requests"])
