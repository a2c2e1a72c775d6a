"""`unsigned.replaces_state` and `prev_content` (spec v1.19) wherever clients see
a state event: /sync, /messages, /context, /state, /state/{type}, /event."""

from __future__ import annotations

import json
from typing import Any

import nio

V3 = "/_matrix/client/v3"


async def _get(hs: Any, token: str, path: str) -> Any:
    status, body = await hs.request("GET", V3 + path, token=token)
    assert status == 200, (path, body)
    return body


def _check(event: dict[str, Any], first: str, alice: str) -> None:
    assert event["content"] == {"name": "Two"}
    unsigned = event["unsigned"]
    assert unsigned["replaces_state"] == first
    assert unsigned["prev_content"] == {"name": "One"}
    assert unsigned["prev_sender"] == alice


async def test_replaced_state_is_named_on_every_read(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = (await alice.room_create(visibility=nio.RoomVisibility.public)).room_id
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    first = (await alice.room_put_state(room_id, "m.room.name", {"name": "One"})).event_id
    message = (
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    ).event_id
    second = (await alice.room_put_state(room_id, "m.room.name", {"name": "Two"})).event_id
    token = bob.access_token

    _check(await _get(hs, token, f"/rooms/{room_id}/event/{second}"), first, alice.user_id)
    _check(
        await _get(hs, token, f"/rooms/{room_id}/state/m.room.name?format=event"),
        first,
        alice.user_id,
    )
    [in_state] = [
        e for e in await _get(hs, token, f"/rooms/{room_id}/state") if e["type"] == "m.room.name"
    ]
    _check(in_state, first, alice.user_id)

    chunk = (await _get(hs, token, f"/rooms/{room_id}/messages?dir=b&limit=10"))["chunk"]
    by_id = {e["event_id"]: e for e in chunk}
    _check(by_id[second], first, alice.user_id)
    # The first name replaced nothing, and a message is no state at all.
    assert "replaces_state" not in by_id[first]["unsigned"]
    assert "replaces_state" not in by_id[message].get("unsigned", {})

    context = await _get(hs, token, f"/rooms/{room_id}/context/{message}?limit=4")
    _check(
        next(e for e in context["events_after"] if e["event_id"] == second),
        first,
        alice.user_id,
    )

    # matrix-nio's sync keeps the unsigned block of timeline events.
    synced = await bob.sync(timeout=0, full_state=True)
    timeline = synced.rooms.join[room_id].timeline.events
    name_event = next(e for e in timeline if e.event_id == second)
    assert name_event.source["unsigned"]["replaces_state"] == first
    # And the raw /sync body names it too, in the timeline.
    sync_filter = json.dumps({"room": {"timeline": {"limit": 3}}})
    body = await _get(hs, token, f"/sync?filter={sync_filter}")
    raw = next(
        e for e in body["rooms"]["join"][room_id]["timeline"]["events"] if e["event_id"] == second
    )
    _check(raw, first, alice.user_id)
