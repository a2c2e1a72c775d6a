"""matrix-js-sdk on /sync with `state_after` (MSC4222): js-sdk asks for it by
its unstable name and takes room state only from it, so the state it ends
with after an initial sync and after a gappy, lazy-loading incremental sync
is what the server says (tests/interop/js/state_after_flow.mjs). The gappy
incremental cases are in tests/test_state_after.py (js-sdk restarts with an
initial sync, so it cannot be led into one)."""

from __future__ import annotations

from typing import Any

from tests.interop.node_script import JS_DIR, run_node_script

V3 = "/_matrix/client/v3"


async def test_js_sdk_room_state_from_state_after(hs: Any) -> None:
    alice, bob = await hs.register("alice"), await hs.register("bob")
    token = alice["access_token"]
    status, created = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=token,
        json={
            "preset": "public_chat",
            "name": "first name",
            "topic": "first topic",
            "power_level_content_override": {"users": {bob["user_id"]: 50}},
        },
    )
    assert status == 200, created
    room_id = created["room_id"]
    # The name changes before the last messages: outside a 2-event timeline.
    status, _ = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/state/m.room.name/", token=token, json={"name": "renamed"}
    )
    assert status == 200
    for n in range(3):
        status, _ = await hs.request(
            "PUT",
            f"{V3}/rooms/{room_id}/send/m.room.message/t{n}",
            token=token,
            json={"msgtype": "m.text", "body": f"hello {n}"},
        )
        assert status == 200

    result = await run_node_script(
        JS_DIR / "state_after_flow.mjs",
        hs.url,
        token,
        alice["user_id"],
        bob["access_token"],
        room_id,
    )
    assert result["requests"], result
    assert all("org.matrix.msc4222.use_state_after=true" in url for url in result["requests"])
    assert any("since=" in url for url in result["requests"])
    initial = result["initial"]
    assert initial["name"] == "renamed" and initial["topic"] == "first topic"
    assert initial["members"] == {alice["user_id"]: "join"}
    assert initial["timeline"] == ["m.room.message", "m.room.message"]

    # Incremental syncs: bob joined and changed the topic; state_after brings
    # both (the member event with bob's messages, as lazy loading wants).
    after = result["after_gap"]
    assert after["topic"] == "second topic" and after["name"] == "renamed"
    assert after["members"] == {alice["user_id"]: "join", bob["user_id"]: "join"}
