"""The legacy endpoints older clients still call: GET /events (the user's
stream and the world_readable peek), GET /events/{eventId}, GET /initialSync,
GET /rooms/{roomId}/initialSync, and what /versions tells them."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest

V3 = "/_matrix/client/v3"
R0 = "/_matrix/client/r0"
_txn_ids = itertools.count()


class User:
    """A registered user making raw requests against the test server."""

    def __init__(self, hs: Any, name: str, token: str) -> None:
        self.hs = hs
        self.user_id = f"@{name}:localhost"
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        prefix = "" if path.startswith("/_matrix") else V3
        return await self.hs.request(method, prefix + path, token=self.token, json=body)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, result = await self.call(method, path, body)
        assert status == 200, (path, result)
        return result

    async def create_room(self, **body: Any) -> str:
        return (await self.ok("POST", "/createRoom", body))["room_id"]

    async def say(self, room_id: str, text: str) -> str:
        path = f"/rooms/{room_id}/send/m.room.message/t{next(_txn_ids)}"
        return (await self.ok("PUT", path, {"msgtype": "m.text", "body": text}))["event_id"]

    async def set_state(self, room_id: str, type: str, content: dict) -> str:
        return (await self.ok("PUT", f"/rooms/{room_id}/state/{type}/", content))["event_id"]

    async def events(self, prefix: str = R0, **params: Any) -> dict[str, Any]:
        return await self.ok("GET", f"{prefix}/events?{urlencode(params)}")

    async def initial_sync(self, **params: Any) -> dict[str, Any]:
        return await self.ok("GET", f"/initialSync?{urlencode(params)}")

    async def room_initial_sync(self, room_id: str, **params: Any) -> tuple[int, Any]:
        return await self.call("GET", f"/rooms/{room_id}/initialSync?{urlencode(params)}")


@pytest.fixture
async def users(hs: Any) -> Any:
    async def make(name: str) -> User:
        return User(hs, name, (await hs.register(name))["access_token"])

    return make


def bodies(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]


async def test_versions_list_the_r0_releases_and_legacy_unstable_features(hs: Any) -> None:
    status, body = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200
    assert {"r0.0.1", "r0.5.0", "r0.6.1", "v1.1", "v1.12"} <= set(body["versions"])
    assert body["unstable_features"]["m.lazy_load_members"] is True
    assert body["unstable_features"]["org.matrix.e2e_cross_signing"] is True


async def test_events_stream_from_a_token_in_order_with_limit(users: Any) -> None:
    alice = await users("alice")
    room = await alice.create_room()
    first = await alice.events(timeout=0)
    assert first["chunk"] == [] and first["start"] and first["end"]
    sent = [await alice.say(room, f"m{i}") for i in range(5)]

    seen: list[str] = []
    token = first["end"]
    for _ in range(5):
        page = await alice.events(**{"from": token, "timeout": 0, "limit": 2})
        assert page["start"] == token
        seen += [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        assert all(e["room_id"] == room for e in page["chunk"] if "event_id" in e)
        token = page["end"]
        if len(seen) == len(sent):
            break
    assert seen == sent
    # The stream's token is a sync token: /sync carries on from it.
    await alice.say(room, "after")
    synced = await alice.ok("GET", f"/sync?since={quote(token)}&timeout=0")
    assert bodies(synced["rooms"]["join"][room]["timeline"]["events"]) == ["after"]


async def test_events_long_poll_wakes_on_a_new_message(users: Any) -> None:
    alice = await users("alice")
    room = await alice.create_room()
    token = (await alice.events(timeout=0))["end"]
    started = time.monotonic()
    waiting = asyncio.create_task(alice.events(**{"from": token, "timeout": 20000}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await alice.say(room, "wake up")
    page = await asyncio.wait_for(waiting, 10)
    assert bodies(page["chunk"]) == ["wake up"]
    assert time.monotonic() - started < 10


async def test_events_carry_receipts_typing_tags_account_data_and_presence(users: Any) -> None:
    alice = await users("alice")
    room = await alice.create_room()
    message = await alice.say(room, "hello")
    token = (await alice.events(timeout=0))["end"]
    await alice.ok("POST", f"/rooms/{room}/receipt/m.read/{quote(message)}", {})
    await alice.ok(
        "PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    user = quote(alice.user_id)
    await alice.ok("PUT", f"/user/{user}/rooms/{room}/tags/u.work", {"order": 0.5})
    await alice.ok("PUT", f"/user/{user}/account_data/my.type", {"cats": 1})
    await alice.ok("PUT", f"/user/{user}/rooms/{room}/account_data/my.type", {"rats": 2})
    await alice.ok("PUT", f"/presence/{user}/status", {"presence": "online", "status_msg": "hi"})

    page = await alice.events(**{"from": token, "timeout": 0})
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in page["chunk"]:
        by_type.setdefault(event["type"], []).append(event)
    [receipt] = by_type["m.receipt"]
    assert receipt["room_id"] == room
    assert "ts" in receipt["content"][message]["m.read"][alice.user_id]
    [typing] = by_type["m.typing"]
    assert typing == {"type": "m.typing", "room_id": room, "content": {"user_ids": [alice.user_id]}}
    [tag] = by_type["m.tag"]
    assert tag["room_id"] == room and tag["content"] == {"tags": {"u.work": {"order": 0.5}}}
    mine = sorted(by_type["my.type"], key=lambda e: "room_id" in e)
    assert mine == [
        {"type": "my.type", "content": {"cats": 1}},
        {"type": "my.type", "content": {"rats": 2}, "room_id": room},
    ]
    presence = by_type["m.presence"][-1]
    assert presence["content"]["user_id"] == alice.user_id
    assert presence["content"]["status_msg"] == "hi"


async def test_events_peek_into_world_readable_rooms_only(users: Any) -> None:
    alice, bob = await users("alice"), await users("bob")
    public = await alice.create_room()
    await alice.say(public, "before")
    await alice.set_state(
        public, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    private = await alice.create_room()

    token = (await bob.events(room_id=public, timeout=0))["end"]
    await alice.say(public, "mice")
    await alice.say(private, "secret")
    page = await bob.events(**{"from": token, "room_id": public, "timeout": 5000})
    assert bodies(page["chunk"]) == ["mice"]

    status, body = await bob.call("GET", f"{R0}/events?room_id={quote(private)}&timeout=0")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await bob.call("GET", f"{R0}/events?room_id={quote('!nope:localhost')}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Bob's own stream does not show the room he only peeks at.
    own = await bob.events(**{"from": token, "timeout": 0})
    assert bodies(own["chunk"]) == []


@pytest.mark.parametrize(
    "query",
    ["limit=hello", "limit=-2", "timeout=hello", "from=nonsense", "timeout=1.5"],
)
async def test_events_bad_parameters_are_refused(users: Any, query: str) -> None:
    alice = await users("alice")
    status, body = await alice.call("GET", f"{R0}/events?{query}")
    assert status == 400, body
    assert body["errcode"] == "M_INVALID_PARAM"


async def test_single_event_only_if_visible(users: Any) -> None:
    alice, bob = await users("alice"), await users("bob")
    room = await alice.create_room()
    event_id = await alice.say(room, "hello")
    event = await alice.ok("GET", f"/events/{quote(event_id)}")
    assert event["user_id"] == alice.user_id
    assert (event["event_id"], event["room_id"], event["content"]["body"]) == (
        event_id,
        room,
        "hello",
    )
    status, body = await bob.call("GET", f"/events/{quote(event_id)}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_initial_sync_rooms_receipts_account_data(users: Any) -> None:
    alice = await users("alice")
    room = await alice.create_room(name="Kitchen")
    for i in range(4):
        last = await alice.say(room, f"m{i}")
    await alice.set_state(room, "m.room.topic", {"topic": "soup"})
    await alice.ok("POST", f"/rooms/{room}/receipt/m.read/{quote(last)}", {})
    user = quote(alice.user_id)
    await alice.ok("PUT", f"/user/{user}/account_data/my.type", {"cats": 1})
    await alice.ok("PUT", f"/user/{user}/rooms/{room}/account_data/my.type", {"rats": 2})
    await alice.ok("PUT", f"/user/{user}/rooms/{room}/tags/u.work", {})

    body = await alice.initial_sync(limit=2)
    [entry] = body["rooms"]
    assert (entry["room_id"], entry["membership"], entry["visibility"]) == (room, "join", "private")
    assert [e["type"] for e in entry["messages"]["chunk"]] == ["m.room.message", "m.room.topic"]
    # Legacy clients read the sender as user_id, and age at the top level.
    assert all(
        (e["room_id"], e["user_id"]) == (room, alice.user_id) and "age" in e
        for e in entry["messages"]["chunk"]
    )
    # The state is the state now, timeline state events included.
    state = {(e["type"], e["state_key"]): e["content"] for e in entry["state"]}
    assert state[("m.room.name", "")] == {"name": "Kitchen"}
    assert state[("m.room.topic", "")] == {"topic": "soup"}
    assert state[("m.room.member", alice.user_id)]["membership"] == "join"
    # Older messages are a /messages page away from messages.start.
    older = await alice.ok(
        "GET", f"/rooms/{room}/messages?dir=b&limit=1&from={quote(entry['messages']['start'])}"
    )
    assert bodies(older["chunk"]) == ["m2"]
    assert [e["type"] for e in entry["account_data"]] == ["m.tag", "my.type"]
    assert body["account_data"] == [{"type": "my.type", "content": {"cats": 1}}]
    [receipt] = body["receipts"]
    assert receipt["room_id"] == room and alice.user_id in receipt["content"][last]["m.read"]
    assert isinstance(body["presence"], list)
    [nothing] = (await alice.initial_sync(limit=0))["rooms"]
    assert nothing["messages"]["chunk"] == []
    assert {e["type"] for e in nothing["state"]} >= {"m.room.create", "m.room.topic"}
    # The end token carries on as an /events stream.
    await alice.say(room, "later")
    page = await alice.events(**{"from": body["end"], "timeout": 0})
    assert bodies(page["chunk"]) == ["later"]


async def test_initial_sync_archived_rooms_as_they_were_when_left(users: Any) -> None:
    alice, bob = await users("alice"), await users("bob")
    room = await bob.create_room(preset="public_chat")
    await alice.ok("POST", f"/join/{quote(room)}", {})
    await bob.set_state(room, "m.room.topic", {"topic": "before"})
    await bob.say(room, "M1")
    await alice.ok("POST", f"/rooms/{room}/leave", {})
    await bob.say(room, "after")
    await bob.set_state(room, "m.room.topic", {"topic": "after"})

    assert (await alice.initial_sync())["rooms"] == []
    [entry] = (await alice.initial_sync(limit=2, archived="true"))["rooms"]
    assert entry["membership"] == "leave"
    assert [e["type"] for e in entry["messages"]["chunk"]] == ["m.room.message", "m.room.member"]
    assert bodies(entry["messages"]["chunk"]) == ["M1"]
    topic = [e for e in entry["state"] if e["type"] == "m.room.topic"]
    assert [e["content"]["topic"] for e in topic] == ["before"]

    status, own = await alice.room_initial_sync(room, limit=2)
    assert status == 200, own
    assert own["membership"] == "leave"
    assert bodies(own["messages"]["chunk"]) == ["M1"]
    assert [e["content"]["topic"] for e in own["state"] if e["type"] == "m.room.topic"] == [
        "before"
    ]
    assert own["presence"] == [] and own["receipts"] == []


async def test_room_initial_sync_for_members_and_world_readable_readers(users: Any) -> None:
    alice, bob = await users("alice"), await users("bob")
    room = await alice.create_room()
    await alice.say(room, "private")
    status, body = await bob.room_initial_sync(room)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    await alice.set_state(
        room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    last = await alice.say(room, "public")
    await alice.ok("POST", f"/rooms/{room}/receipt/m.read/{quote(last)}", {})
    await alice.ok("PUT", f"/user/{quote(alice.user_id)}/rooms/{room}/tags/u.work", {})

    status, own = await alice.room_initial_sync(room)
    assert status == 200, own
    assert own["room_id"] == room and own["membership"] == "join"
    assert bodies(own["messages"]["chunk"]) == ["private", "public"]
    assert own["account_data"][0]["type"] == "m.tag"
    assert own["receipts"][0]["content"][last]["m.read"][alice.user_id]["ts"] > 0
    # The presence of every member, offline ones included.
    assert [(p["content"]["user_id"], p["content"]["presence"]) for p in own["presence"]] == [
        (alice.user_id, "offline")
    ]
    status, empty = await alice.room_initial_sync(room, limit=0)
    assert status == 200 and empty["messages"]["chunk"] == [] and empty["state"]

    status, peek = await bob.room_initial_sync(room)
    assert status == 200, peek
    assert "membership" not in peek
    assert [e["type"] for e in peek["messages"]["chunk"]] == [
        "m.room.history_visibility",
        "m.room.message",
    ]
    assert bodies(peek["messages"]["chunk"]) == ["public"]
    assert ("m.room.create", "") in {(e["type"], e["state_key"]) for e in peek["state"]}
    assert peek["account_data"] == []
    # messages.end starts a peek at the room's stream.
    await alice.say(room, "next")
    page = await bob.events(**{"from": peek["messages"]["end"], "room_id": room, "timeout": 0})
    assert bodies(page["chunk"]) == ["next"]

    status, body = await bob.room_initial_sync("!unknown:localhost")
    assert status in (403, 404) and body["errcode"] in ("M_FORBIDDEN", "M_NOT_FOUND")
