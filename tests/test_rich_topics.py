"""Rich topics (`m.topic` in m.room.topic, MSC3765, spec v1.15) and the
`format` parameter of the state GET (spec v1.16)."""

from __future__ import annotations

from typing import Any

import nio

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"

RICH_ONLY = {
    "m.topic": {
        "m.text": [
            {"mimetype": "text/html", "body": "<b>Soup</b> club"},
            {"body": "Soup club"},
        ]
    }
}


async def _public_topic(hs: Any, room_id: str) -> str | None:
    status, body = await hs.request("GET", f"{V3}/publicRooms")
    assert status == 200, body
    [room] = [r for r in body["chunk"] if r["room_id"] == room_id]
    return room.get("topic")


async def test_create_room_topic_writes_both_forms(hs, login):
    alice = await login("alice")
    created = await alice.room_create(topic="Plain words", visibility=nio.RoomVisibility.public)
    assert isinstance(created, nio.RoomCreateResponse), created
    got = await alice.room_get_state_event(created.room_id, "m.room.topic")
    assert got.content["topic"] == "Plain words"
    [text] = got.content["m.topic"]["m.text"]
    assert text["body"] == "Plain words" and text.get("mimetype", "text/plain") == "text/plain"
    assert await _public_topic(hs, created.room_id) == "Plain words"


async def test_directory_hierarchy_and_search_read_the_plain_text_representation(hs, login):
    alice = await login("alice")
    room_id = (await alice.room_create(visibility=nio.RoomVisibility.public)).room_id
    token = alice.access_token

    # Only m.topic: the text/plain representation (mimetype absent) is the topic.
    status, body = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/state/m.room.topic", token=token, json=RICH_ONLY
    )
    assert status == 200, body
    assert await _public_topic(hs, room_id) == "Soup club"
    status, tree = await hs.request("GET", f"{V1}/rooms/{room_id}/hierarchy", token=token)
    assert status == 200 and tree["rooms"][0]["topic"] == "Soup club"
    status, found = await hs.request(
        "POST",
        f"{V3}/search",
        token=token,
        json={
            "search_categories": {"room_events": {"search_term": "soup", "keys": ["content.topic"]}}
        },
    )
    assert status == 200, found
    results = found["search_categories"]["room_events"]["results"]
    assert [r["result"]["type"] for r in results] == ["m.room.topic"]
    assert "Soup" in found["search_categories"]["room_events"]["highlights"]

    # No text/plain representation: the `topic` field is used.
    html_only = {
        "topic": "Fallback",
        "m.topic": {"m.text": [{"mimetype": "text/html", "body": "<i>x</i>"}]},
    }
    await hs.request("PUT", f"{V3}/rooms/{room_id}/state/m.room.topic", token=token, json=html_only)
    assert await _public_topic(hs, room_id) == "Fallback"

    # An empty plain text unsets the topic.
    empty = {"topic": "", "m.topic": {"m.text": [{"body": ""}]}}
    await hs.request("PUT", f"{V3}/rooms/{room_id}/state/m.room.topic", token=token, json=empty)
    assert await _public_topic(hs, room_id) is None


async def test_state_event_format(hs, login):
    alice = await login("alice")
    room_id = (await alice.room_create(topic="Hello")).room_id
    path = f"{V3}/rooms/{room_id}/state/m.room.topic"
    token = alice.access_token

    status, content = await hs.request("GET", path, token=token)
    assert status == 200 and content["topic"] == "Hello" and "event_id" not in content
    assert await hs.request("GET", f"{path}?format=content", token=token) == (200, content)
    status, event = await hs.request("GET", f"{path}?format=event", token=token)
    assert status == 200
    assert event["content"] == content and event["type"] == "m.room.topic"
    assert event["state_key"] == "" and event["sender"] == alice.user_id
    assert event["event_id"].startswith("$") and event["room_id"] == room_id
    assert isinstance(event["origin_server_ts"], int)

    status, body = await hs.request("GET", f"{path}?format=pdu", token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
