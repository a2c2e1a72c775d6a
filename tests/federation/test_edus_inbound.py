"""Typing, receipt and presence EDUs from another server reach our users'
/sync; an EDU about a user of a third server is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.federation.remote_room import RemoteRoom
from tests.federation.test_receiver import setup, sync_room

# The fixture, shared with test_receiver.py.
__all__ = ["setup"]


@pytest.fixture
async def dave(setup: tuple[RunningServer, str, RemoteRoom], remote_factory: Any) -> str:
    """A user of a second remote server, joined to the same room: the first
    remote may not speak for him."""
    hs, _, room = setup
    other = await RemoteRoom.join(hs, await remote_factory(), room.room_id, "dave")
    return other.user("dave")


async def initial_sync(hs: RunningServer, token: str) -> dict[str, Any]:
    status, body = await hs.request("GET", "/_matrix/client/v3/sync", token=token)
    assert status == 200, body
    return body


def ephemeral(room_entry: dict[str, Any], type: str) -> list[dict[str, Any]]:
    return [
        e["content"] for e in room_entry.get("ephemeral", {}).get("events", []) if e["type"] == type
    ]


async def test_remote_typing_shows_in_sync(
    setup: tuple[RunningServer, str, RemoteRoom], dave: str
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    edus = [
        {"edu_type": "m.typing", "content": {"room_id": room.room_id, "user_id": u, "typing": True}}
        for u in (bob, dave)
    ]
    status, body = await room.send([], edus)
    assert (status, body) == (200, {"pdus": {}})
    entry = await sync_room(hs, token, room.room_id)
    assert ephemeral(entry, "m.typing") == [{"user_ids": [bob]}]

    stop = {"room_id": room.room_id, "user_id": bob, "typing": False}
    status, _ = await room.send([], [{"edu_type": "m.typing", "content": stop}])
    assert status == 200
    entry = await sync_room(hs, token, room.room_id)
    assert ephemeral(entry, "m.typing") == []


async def test_a_remote_receipt_shows_in_sync(
    setup: tuple[RunningServer, str, RemoteRoom], dave: str
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    message = room.message("read me")
    status, body = await room.send([message])
    assert status == 200 and body["pdus"][message.event_id] == {}
    receipt = {"event_ids": [message.event_id], "data": {"ts": 1_700_000_000_000}}
    edu = {
        "edu_type": "m.receipt",
        "content": {room.room_id: {"m.read": {bob: receipt, dave: receipt}}},
    }
    status, _ = await room.send([], [edu])
    assert status == 200
    entry = await sync_room(hs, token, room.room_id)
    [content] = ephemeral(entry, "m.receipt")
    assert content == {message.event_id: {"m.read": {bob: {"ts": 1_700_000_000_000}}}}


async def test_remote_presence_shows_in_sync(
    setup: tuple[RunningServer, str, RemoteRoom], dave: str
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    push = [
        {
            "user_id": u,
            "presence": "online",
            "status_msg": "lunch",
            "last_active_ago": 1000,
            "currently_active": True,
        }
        for u in (bob, dave)
    ]
    status, _ = await room.send([], [{"edu_type": "m.presence", "content": {"push": push}}])
    assert status == 200
    body = await initial_sync(hs, token)
    events = {e["sender"]: e["content"] for e in body.get("presence", {}).get("events", [])}
    assert dave not in events
    assert events[bob]["presence"] == "online"
    assert events[bob]["status_msg"] == "lunch"
    assert events[bob]["currently_active"] is True
    status, status_body = await hs.request(
        "GET", f"/_matrix/client/v3/presence/{bob}/status", token=token
    )
    assert (status, status_body["presence"]) == (200, "online")


async def test_typing_and_receipts_from_a_server_the_acl_denies_are_ignored(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    message = room.message("seen?")
    status, _ = await room.send([message])
    assert status == 200
    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/state/m.room.server_acl/",
        token=token,
        json={"allow": ["*"], "deny": ["127.0.0.1"]},
    )
    assert status == 200
    typing = {"room_id": room.room_id, "user_id": bob, "typing": True}
    receipt = {"event_ids": [message.event_id], "data": {"ts": 1}}
    edus = [
        {"edu_type": "m.typing", "content": typing},
        {"edu_type": "m.receipt", "content": {room.room_id: {"m.read": {bob: receipt}}}},
    ]
    status, _ = await room.send([], edus)
    assert status == 200
    entry = await sync_room(hs, token, room.room_id)
    assert ephemeral(entry, "m.typing") == []
    assert ephemeral(entry, "m.receipt") == []
