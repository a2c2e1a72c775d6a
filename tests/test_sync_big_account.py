"""/sync for a user in many rooms: an incremental sync costs what changed.

The rooms provider asks storage only about the rooms with events in the
range (storage/sync.py `changed_memberships`), and still reports every kind
of change: messages, joins, invites, kicks.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from homeserver.sync.service import MAX_CONCURRENT_BUILDS
from storage.sync import SyncStore

V3 = "/_matrix/client/v3"
_txn = itertools.count()


async def _user(hs: Any, name: str) -> str:
    return str((await hs.register(name, "pw"))["access_token"])


async def _call(hs: Any, method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
    status, got = await hs.request(method, V3 + path, token=token, json=body)
    assert status == 200, got
    return dict(got)


async def _room(hs: Any, token: str, **body: Any) -> str:
    return str((await _call(hs, "POST", "/createRoom", token, body))["room_id"])


async def _say(hs: Any, token: str, room: str, text: str) -> str:
    path = f"/rooms/{room}/send/m.room.message/t{next(_txn)}"
    sent = await _call(hs, "PUT", path, token, {"msgtype": "m.text", "body": text})
    return str(sent["event_id"])


async def _sync(hs: Any, token: str, since: str | None = None) -> dict[str, Any]:
    query = "?timeout=0" + (f"&since={since}" if since else "")
    return await _call(hs, "GET", "/sync" + query, token)


@pytest.fixture
def timeline_rooms(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The rooms each timelines read of the rooms provider asked for."""
    asked: list[list[str]] = []
    original = SyncStore.timelines

    async def timelines(self: SyncStore, ranges: Any, query: Any, ignored: Any) -> Any:
        asked.append([r.room_id for r in ranges])
        return await original(self, ranges, query, ignored)

    monkeypatch.setattr(SyncStore, "timelines", timelines)
    return asked


async def test_one_new_message_reads_one_room_of_many(hs, timeline_rooms):
    alice, bob = await _user(hs, "alice"), await _user(hs, "bob")
    rooms = [await _room(hs, alice, preset="public_chat") for _ in range(12)]
    for room in rooms:
        await _call(hs, "POST", f"/rooms/{room}/join", bob, {})
    first = await _sync(hs, bob)
    assert set(first["rooms"]["join"]) == set(rooms)

    event_id = await _say(hs, alice, rooms[5], "only here")
    timeline_rooms.clear()
    later = await _sync(hs, bob, first["next_batch"])

    assert list(later["rooms"]["join"]) == [rooms[5]]
    events = later["rooms"]["join"][rooms[5]]["timeline"]["events"]
    assert [(e["event_id"], e["content"]["body"]) for e in events] == [(event_id, "only here")]
    assert timeline_rooms == [[rooms[5]]]

    # Nothing new: no room is read at all.
    timeline_rooms.clear()
    idle = await _sync(hs, bob, later["next_batch"])
    assert idle.get("rooms", {}).get("join", {}) == {}
    assert timeline_rooms == []


async def test_membership_changes_are_reported_among_quiet_rooms(hs):
    alice, bob = await _user(hs, "alice"), await _user(hs, "bob")
    quiet = [await _room(hs, alice, preset="public_chat") for _ in range(5)]
    for room in quiet:
        await _call(hs, "POST", f"/rooms/{room}/join", bob, {})
    kick_from = await _room(hs, alice, preset="public_chat")
    await _call(hs, "POST", f"/rooms/{kick_from}/join", bob, {})
    join_later = await _room(hs, alice, preset="public_chat")
    invite_to = await _room(hs, alice, preset="private_chat")
    since = (await _sync(hs, bob))["next_batch"]

    await _call(hs, "POST", f"/rooms/{kick_from}/kick", alice, {"user_id": "@bob:localhost"})
    await _call(hs, "POST", f"/rooms/{join_later}/join", bob, {})
    await _call(hs, "POST", f"/rooms/{invite_to}/invite", alice, {"user_id": "@bob:localhost"})
    later = await _sync(hs, bob, since)

    rooms = later["rooms"]
    assert set(rooms.get("join", {})) == {join_later}
    assert set(rooms.get("leave", {})) == {kick_from}
    assert set(rooms.get("invite", {})) == {invite_to}
    kick = rooms["leave"][kick_from]["timeline"]["events"][-1]
    assert (kick["type"], kick["content"]["membership"]) == ("m.room.member", "leave")
    # A room joined in the range comes with its state, as on an initial sync.
    state = {e["type"] for e in rooms["join"][join_later]["state"]["events"]}
    assert "m.room.create" in state or any(
        e["type"] == "m.room.create" for e in rooms["join"][join_later]["timeline"]["events"]
    )


async def test_more_parked_polls_than_concurrent_builds_all_wake(hs):
    """Responses are built a bounded number at a time (sync/service.py
    MAX_CONCURRENT_BUILDS); a parked poll does not hold a turn, so more
    polls than that, woken by one message, all return with it."""
    count = MAX_CONCURRENT_BUILDS + 8
    tokens = [await _user(hs, f"u{i}") for i in range(count)]
    room = await _room(hs, tokens[0], preset="public_chat")
    for token in tokens[1:]:
        await _call(hs, "POST", f"/rooms/{room}/join", token, {})
    since = [(await _sync(hs, t))["next_batch"] for t in tokens]
    # Past the other users' presence going online.
    since = [(await _sync(hs, t, s))["next_batch"] for t, s in zip(tokens, since, strict=True)]

    async def poll(token: str, position: str) -> list[str]:
        while True:
            path = f"/sync?timeout=20000&since={position}"
            body = await _call(hs, "GET", path, token)
            position = body["next_batch"]
            events = body.get("rooms", {}).get("join", {}).get(room, {})
            texts = [e["content"].get("body") for e in events.get("timeline", {}).get("events", [])]
            if texts:
                return texts

    polls = [asyncio.create_task(poll(t, s)) for t, s in zip(tokens[1:], since[1:], strict=True)]
    await _say(hs, tokens[0], room, "to everyone")
    results = await asyncio.wait_for(asyncio.gather(*polls), 30)
    assert results == [["to everyone"]] * (count - 1)
