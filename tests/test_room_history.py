"""Room history reads (/messages, /context, /members, /joined_members, state,
single events) and history visibility, over HTTP and with matrix-nio."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import nio
import pytest

from homeserver.rooms.visibility import may_see, more_permissive

V3 = "/_matrix/client/v3"
_txn_ids = itertools.count()


class User:
    """A registered user making raw requests against the test server."""

    def __init__(self, hs: Any, name: str, token: str) -> None:
        self.hs = hs
        self.name = name
        self.user_id = f"@{name}:localhost"
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.hs.request(method, V3 + path, token=self.token, json=body)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, result = await self.call(method, path, body)
        assert status == 200, (path, result)
        return result

    async def create_room(self, **body: Any) -> str:
        return (await self.ok("POST", "/createRoom", body))["room_id"]

    async def say(self, room_id: str, text: str, **extra: Any) -> str:
        path = f"/rooms/{room_id}/send/m.room.message/t{next(_txn_ids)}"
        body = {"msgtype": "m.text", "body": text, **extra}
        return (await self.ok("PUT", path, body))["event_id"]

    async def set_state(self, room_id: str, type: str, content: dict, key: str = "") -> str:
        return (await self.ok("PUT", f"/rooms/{room_id}/state/{type}/{key}", content))["event_id"]

    async def history_visibility(self, room_id: str, setting: str) -> str:
        return await self.set_state(
            room_id, "m.room.history_visibility", {"history_visibility": setting}
        )

    async def join(self, room_id: str) -> None:
        await self.ok("POST", f"/rooms/{room_id}/join", {})

    async def leave(self, room_id: str) -> None:
        await self.ok("POST", f"/rooms/{room_id}/leave", {})

    async def messages(self, room_id: str, **params: Any) -> tuple[int, Any]:
        if "filter" in params:
            params["filter"] = json.dumps(params["filter"])
        return await self.call("GET", f"/rooms/{room_id}/messages?{urlencode(params)}")

    async def page(self, room_id: str, **params: Any) -> Any:
        status, body = await self.messages(room_id, **params)
        assert status == 200, body
        return body


@pytest.fixture
async def users(hs: Any) -> Any:
    async def make(name: str) -> User:
        return User(hs, name, (await hs.register(name))["access_token"])

    return make


@pytest.fixture
async def nio_login(hs: Any) -> AsyncIterator[Any]:
    clients: list[nio.AsyncClient] = []

    async def make(name: str) -> nio.AsyncClient:
        await hs.register(name, "pw")
        client = nio.AsyncClient(hs.url, f"@{name}:localhost")
        clients.append(client)
        assert isinstance(await client.login("pw"), nio.LoginResponse)
        return client

    yield make
    for client in clients:
        await client.close()


def bodies(chunk: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]


MESSAGES_ONLY = {"types": ["m.room.message"]}


async def test_pages_back_and_forward_over_25_messages(users):
    alice = await users("alice")
    room = await alice.create_room()
    for i in range(25):
        await alice.say(room, f"m{i}")

    first = await alice.page(room, dir="b", limit=10, filter=MESSAGES_ONLY)
    assert bodies(first["chunk"]) == [f"m{i}" for i in range(24, 14, -1)]
    second = await alice.page(
        room, dir="b", limit=10, filter=MESSAGES_ONLY, **{"from": first["end"]}
    )
    assert second["start"] == first["end"]
    assert bodies(second["chunk"]) == [f"m{i}" for i in range(14, 4, -1)]
    third = await alice.page(
        room, dir="b", limit=10, filter=MESSAGES_ONLY, **{"from": second["end"]}
    )
    assert bodies(third["chunk"]) == [f"m{i}" for i in range(4, -1, -1)]
    # As in Synapse, a page with events has an `end`; the page after it is
    # empty and has none: the start of the room was reached.
    beyond = await alice.page(
        room, dir="b", limit=10, filter=MESSAGES_ONLY, **{"from": third["end"]}
    )
    assert beyond["chunk"] == [] and "end" not in beyond

    # Forwards again from where the second page ended (just before m5).
    forward = await alice.page(
        room, dir="f", limit=10, filter=MESSAGES_ONLY, **{"from": second["end"]}
    )
    assert bodies(forward["chunk"]) == [f"m{i}" for i in range(5, 15)]
    forward2 = await alice.page(
        room, dir="f", limit=10, filter=MESSAGES_ONLY, **{"from": forward["end"]}
    )
    assert bodies(forward2["chunk"]) == [f"m{i}" for i in range(15, 25)]
    last = await alice.page(room, dir="f", limit=10, **{"from": forward2["end"]})
    assert last["chunk"] == [] and "end" not in last

    # Forwards from the first page's start is the live end: nothing yet.
    live = await alice.page(room, dir="f", **{"from": first["start"]})
    assert live["chunk"] == [] and "end" not in live
    await alice.say(room, "m25")
    live = await alice.page(room, dir="f", **{"from": first["start"]})
    assert bodies(live["chunk"]) == ["m25"]

    # `to` stops a page: from the live end back to the gap before m5.
    between = await alice.page(room, dir="b", limit=100, to=second["end"], filter=MESSAGES_ONLY)
    assert bodies(between["chunk"]) == [f"m{i}" for i in range(25, 4, -1)]
    beyond = await alice.page(room, dir="b", to=second["end"], **{"from": between["end"]})
    assert beyond["chunk"] == [] and "end" not in beyond

    # dir=f without `from` starts at the room's creation.
    start = await alice.page(room, dir="f", limit=3)
    assert [e["type"] for e in start["chunk"]] == [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
    ]
    assert start["chunk"][1]["state_key"] == alice.user_id


async def test_stream_tokens_paginate_like_topological_ones(hs, users):
    alice = await users("alice")
    room = await alice.create_room()
    ids = [await alice.say(room, f"m{i}") for i in range(6)]
    stream = await hs.pool.fetchval(
        "SELECT stream_ordering FROM events WHERE event_id = $1", ids[3]
    )
    back = await alice.page(room, dir="b", limit=3, **{"from": f"s{stream}"})
    assert back["start"] == f"s{stream}"
    assert bodies(back["chunk"]) == ["m3", "m2", "m1"]
    forward = await alice.page(room, dir="f", limit=10, **{"from": f"s{stream}"})
    assert bodies(forward["chunk"]) == ["m4", "m5"]
    # A /sync-style token whose first part is the event stream position.
    synced = await alice.page(room, dir="b", limit=1, **{"from": f"s{stream}_7_1_0"})
    assert bodies(synced["chunk"]) == ["m3"]


async def test_bad_requests_are_refused(users):
    alice = await users("alice")
    room = await alice.create_room()
    for params, errcode in [
        ({"dir": "x"}, "M_INVALID_PARAM"),
        ({"dir": "b", "limit": "ten"}, "M_INVALID_PARAM"),
        ({"dir": "b", "limit": "-1"}, "M_INVALID_PARAM"),
        ({"dir": "b", "from": "garbage"}, "M_INVALID_PARAM"),
        ({"dir": "b", "to": "t1"}, "M_INVALID_PARAM"),
    ]:
        status, body = await alice.messages(room, **params)
        assert (status, body["errcode"]) == (400, errcode), params
    status, body = await alice.call("GET", f"/rooms/{room}/messages?dir=b&filter=%7Bnot-json")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    for bad in ({"types": "m.room.message"}, {"contains_url": "yes"}, [1]):
        status, body = await alice.messages(room, dir="b", filter=bad)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    status, body = await alice.call("GET", f"/rooms/{room}/members?membership=joined")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await alice.messages("!nowhere:localhost", dir="b")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # The limit is capped rather than refused.
    assert (await alice.messages(room, dir="b", limit=100000))[0] == 200


async def test_filters(users):
    alice, bob, carol = await users("alice"), await users("bob"), await users("carol")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await carol.join(room)
    await alice.say(room, "a1")
    await bob.say(room, "b1")
    await alice.say(room, "picture", msgtype="m.image", url="mxc://localhost/abc")
    await alice.ok("PUT", f"/rooms/{room}/send/org.example.ping/p1", {"n": 1})
    await bob.say(room, "b2")

    async def chunk(flt: dict, limit: int = 5) -> list[dict]:
        return (await alice.page(room, dir="b", limit=limit, filter=flt))["chunk"]

    assert bodies(await chunk({"senders": [bob.user_id], **MESSAGES_ONLY})) == ["b2", "b1"]
    assert bodies(await chunk({"not_senders": [bob.user_id], **MESSAGES_ONLY})) == [
        "picture",
        "a1",
    ]
    assert bodies(await chunk({"contains_url": True})) == ["picture"]
    assert bodies(await chunk({"contains_url": False, **MESSAGES_ONLY})) == ["b2", "b1", "a1"]
    assert [e["type"] for e in await chunk({"types": ["org.example.*"]})] == ["org.example.ping"]
    no_ping = await chunk({"not_types": ["org.*", "m.room.member"]}, limit=4)
    assert [e["type"] for e in no_ping] == ["m.room.message"] * 4
    assert await chunk({"not_rooms": [room]}) == []

    # Lazy-loading members: state holds the member events of this page's senders only.
    page = await alice.page(room, dir="b", limit=2, filter={"lazy_load_members": True})
    assert [(e["type"], e["sender"]) for e in page["chunk"]] == [
        ("m.room.message", bob.user_id),
        ("org.example.ping", alice.user_id),
    ]
    assert {e["state_key"] for e in page["state"]} == {alice.user_id, bob.user_id}
    assert all(e["type"] == "m.room.member" for e in page["state"])
    page = await alice.page(
        room, dir="b", limit=1, filter={"lazy_load_members": True, "senders": [bob.user_id]}
    )
    assert [e["state_key"] for e in page["state"]] == [bob.user_id]
    assert page["state"][0]["content"]["membership"] == "join"
    plain = await alice.page(room, dir="b", limit=2)
    assert "state" not in plain


async def test_joined_visibility_hides_history_before_the_join(users):
    alice, bob = await users("alice"), await users("bob")
    room = await alice.create_room(preset="public_chat")
    await alice.history_visibility(room, "joined")
    before = await alice.say(room, "before bob")
    await bob.join(room)
    after = await alice.say(room, "after bob")

    page = await bob.page(room, dir="b", limit=50)
    assert bodies(page["chunk"]) == ["after bob"]
    assert page["chunk"][1]["type"] == "m.room.member"
    assert page["chunk"][1]["state_key"] == bob.user_id
    # Older events were under "shared" (the change itself counts as the more
    # permissive of old and new): bob sees them, back to the room's creation.
    older = [(e["type"], e.get("content", {}).get("history_visibility")) for e in page["chunk"][2:]]
    assert older[0] == ("m.room.history_visibility", "joined")
    assert older[-1] == ("m.room.create", None)
    beyond = await bob.page(room, dir="b", limit=50, **{"from": page["end"]})
    assert beyond["chunk"] == [] and "end" not in beyond
    status, body = await bob.call("GET", f"/rooms/{room}/event/{before}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert (await bob.ok("GET", f"/rooms/{room}/event/{after}"))["content"]["body"] == "after bob"
    status, _ = await bob.call("GET", f"/rooms/{room}/context/{before}")
    assert status == 404
    # Alice, joined throughout, sees everything.
    assert bodies((await alice.page(room, dir="b"))["chunk"]) == ["after bob", "before bob"]


async def test_shared_visibility_shows_history_before_the_join(users):
    alice, bob = await users("alice"), await users("bob")
    room = await alice.create_room(preset="public_chat")
    before = await alice.say(room, "before bob")
    await bob.join(room)
    await alice.say(room, "after bob")
    page = await bob.page(room, dir="b", limit=50, filter=MESSAGES_ONLY)
    assert bodies(page["chunk"]) == ["after bob", "before bob"]
    event = await bob.ok("GET", f"/rooms/{room}/event/{before}")
    assert event["content"]["body"] == "before bob"


async def test_visibility_changes_and_invited(users):
    alice, bob = await users("alice"), await users("bob")
    room = await alice.create_room(preset="public_chat")
    await alice.say(room, "shared era")
    change = await alice.history_visibility(room, "invited")
    await alice.say(room, "invited era, before the invite")
    await alice.ok("POST", f"/rooms/{room}/invite", {"user_id": bob.user_id})
    await alice.say(room, "while bob is invited")
    await bob.join(room)
    await alice.say(room, "bob is in")

    page = await bob.page(room, dir="b", limit=50)
    assert bodies(page["chunk"]) == ["bob is in", "while bob is invited", "shared era"]
    ids = [e["event_id"] for e in page["chunk"]]
    # The change to "invited" is judged by the more permissive of old and new.
    assert change in ids
    assert any(
        e["type"] == "m.room.member" and e["content"]["membership"] == "invite"
        for e in page["chunk"]
    )


async def test_a_user_who_left_sees_history_up_to_their_leave(users):
    alice, bob, carol = await users("alice"), await users("bob"), await users("carol")
    room = await alice.create_room(preset="public_chat", name="Old name")
    await alice.say(room, "before bob")
    await bob.join(room)
    seen = await alice.say(room, "bob was here")
    await bob.leave(room)
    unseen = await alice.say(room, "after bob left")
    await alice.set_state(room, "m.room.name", {"name": "New name"})
    await carol.join(room)

    page = await bob.page(room, dir="b", limit=50)
    assert bodies(page["chunk"]) == ["bob was here", "before bob"]
    assert page["chunk"][0]["type"] == "m.room.member"
    assert page["chunk"][0]["content"]["membership"] == "leave"
    forward = await bob.page(room, dir="f", limit=50, filter=MESSAGES_ONLY)
    assert bodies(forward["chunk"]) == ["before bob", "bob was here"]
    beyond = await bob.page(
        room, dir="f", limit=50, filter=MESSAGES_ONLY, **{"from": forward["end"]}
    )
    assert beyond["chunk"] == [] and "end" not in beyond

    assert (await bob.ok("GET", f"/rooms/{room}/event/{seen}"))["event_id"] == seen
    status, body = await bob.call("GET", f"/rooms/{room}/event/{unseen}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    context = await bob.ok("GET", f"/rooms/{room}/context/{seen}?limit=10")
    assert [e.get("content", {}).get("membership") for e in context["events_after"]] == ["leave"]

    # State reads give the room as it was when bob left.
    assert (await bob.ok("GET", f"/rooms/{room}/state/m.room.name"))["name"] == "Old name"
    assert (await alice.ok("GET", f"/rooms/{room}/state/m.room.name"))["name"] == "New name"
    state = await bob.ok("GET", f"/rooms/{room}/state")
    members = {
        e["state_key"]: e["content"]["membership"] for e in state if e["type"] == "m.room.member"
    }
    assert members == {alice.user_id: "join", bob.user_id: "leave"}
    chunk = (await bob.ok("GET", f"/rooms/{room}/members"))["chunk"]
    assert {e["state_key"] for e in chunk} == {alice.user_id, bob.user_id}
    status, body = await bob.call("GET", f"/rooms/{room}/joined_members")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # After forgetting the room, bob reads nothing more.
    await bob.ok("POST", f"/rooms/{room}/forget", {})
    status, body = await bob.messages(room, dir="b")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_strangers_read_world_readable_rooms_only(users):
    alice, dave = await users("alice"), await users("dave")
    private = await alice.create_room(preset="public_chat")
    secret = await alice.say(private, "members only")
    for status, body in [
        await dave.messages(private, dir="b"),
        await dave.call("GET", f"/rooms/{private}/state"),
        await dave.call("GET", f"/rooms/{private}/members"),
        await dave.call("GET", f"/rooms/{private}/joined_members"),
    ]:
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await dave.call("GET", f"/rooms/{private}/event/{secret}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    await alice.history_visibility(private, "world_readable")
    hello = await alice.say(private, "hello world")
    page = await dave.page(private, dir="b", limit=50, filter=MESSAGES_ONLY)
    # Earlier messages were shared-only: a stranger sees from the switch on.
    assert bodies(page["chunk"]) == ["hello world"]
    assert (await dave.ok("GET", f"/rooms/{private}/event/{hello}"))["event_id"] == hello
    state = await dave.ok("GET", f"/rooms/{private}/state/m.room.history_visibility")
    assert state == {"history_visibility": "world_readable"}
    joined = await dave.ok("GET", f"/rooms/{private}/joined_members")
    assert list(joined["joined"]) == [alice.user_id]
    context = await dave.ok("GET", f"/rooms/{private}/context/{hello}")
    assert context["event"]["content"]["body"] == "hello world"


async def test_members_with_membership_filters_and_at(users):
    alice, bob, carol, dan, eve = [await users(n) for n in ("alice", "bob", "carol", "dan", "eve")]
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await dan.join(room)
    await eve.join(room)
    before_invite = (await alice.page(room, dir="b", limit=1))["start"]
    await alice.ok("POST", f"/rooms/{room}/invite", {"user_id": carol.user_id})
    await dan.leave(room)
    await alice.ok("POST", f"/rooms/{room}/ban", {"user_id": eve.user_id, "reason": "spam"})

    async def members(query: str = "") -> dict[str, str]:
        chunk = (await bob.ok("GET", f"/rooms/{room}/members{query}"))["chunk"]
        return {e["state_key"]: e["content"]["membership"] for e in chunk}

    everyone = {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "invite",
        dan.user_id: "leave",
        eve.user_id: "ban",
    }
    assert await members() == everyone
    assert await members("?membership=join") == {alice.user_id: "join", bob.user_id: "join"}
    assert await members("?membership=invite") == {carol.user_id: "invite"}
    assert await members("?not_membership=leave") == {
        k: v for k, v in everyone.items() if v != "leave"
    }
    assert await members("?membership=join&not_membership=ban") == {
        alice.user_id: "join",
        bob.user_id: "join",
    }
    at = await members(f"?at={quote(before_invite)}")
    assert at == {
        alice.user_id: "join",
        bob.user_id: "join",
        dan.user_id: "join",
        eve.user_id: "join",
    }
    # As in Synapse, a banned user reads no more of the room; dan, who left, still can.
    status, body = await eve.messages(room, dir="b")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await dan.messages(room, dir="b"))[0] == 200
    status, body = await bob.call("GET", f"/rooms/{room}/members?at=nonsense")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_context_around_an_event(users):
    alice, bob = await users("alice"), await users("bob")
    room = await alice.create_room(preset="public_chat", name="Context")
    await bob.join(room)
    ids = [await (alice if i % 2 else bob).say(room, f"c{i}") for i in range(11)]

    ctx = await alice.ok("GET", f"/rooms/{room}/context/{ids[5]}?limit=4")
    assert ctx["event"]["content"]["body"] == "c5"
    assert bodies(ctx["events_before"]) == ["c4", "c3"]
    assert bodies(ctx["events_after"]) == ["c6", "c7"]
    state = {(e["type"], e["state_key"]): e["content"] for e in ctx["state"]}
    assert state[("m.room.name", "")] == {"name": "Context"}
    assert state[("m.room.member", bob.user_id)]["membership"] == "join"

    back = await alice.page(room, dir="b", limit=2, **{"from": ctx["start"]})
    assert bodies(back["chunk"]) == ["c2", "c1"]
    forward = await alice.page(room, dir="f", limit=2, **{"from": ctx["end"]})
    assert bodies(forward["chunk"]) == ["c8", "c9"]

    flt = quote(json.dumps({"senders": [bob.user_id], "lazy_load_members": True}))
    ctx = await alice.ok("GET", f"/rooms/{room}/context/{ids[5]}?limit=4&filter={flt}")
    assert bodies(ctx["events_before"]) == ["c4", "c2"]
    assert bodies(ctx["events_after"]) == ["c6", "c8"]
    assert [e["state_key"] for e in ctx["state"]] == [bob.user_id]

    status, body = await alice.call("GET", f"/rooms/{room}/context/$missing")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_with_nio(nio_login):
    alice, bob = await nio_login("alice"), await nio_login("bob")
    await alice.set_displayname("Alice A.")
    created = await alice.room_create(name="Nio", preset=nio.RoomPreset.public_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id
    assert isinstance(await bob.join(room), nio.JoinResponse)
    sent = []
    for i in range(15):
        client = alice if i % 3 else bob
        resp = await client.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": f"n{i}"}
        )
        sent.append(resp.event_id)

    page = await alice.room_messages(room, limit=5, message_filter=MESSAGES_ONLY)
    assert isinstance(page, nio.RoomMessagesResponse), page
    assert [e.body for e in page.chunk] == [f"n{i}" for i in range(14, 9, -1)]
    older = await alice.room_messages(room, start=page.end, limit=5, message_filter=MESSAGES_ONLY)
    assert [e.body for e in older.chunk] == [f"n{i}" for i in range(9, 4, -1)]
    newer = await alice.room_messages(
        room, start=older.end, direction=nio.MessageDirection.front, limit=3
    )
    assert [e.body for e in newer.chunk] == ["n5", "n6", "n7"]

    ctx = await bob.room_context(room, sent[7], limit=2)
    assert isinstance(ctx, nio.RoomContextResponse), ctx
    assert ctx.event.body == "n7"
    assert [e.body for e in ctx.events_before] == ["n6"]
    assert [e.body for e in ctx.events_after] == ["n8"]

    members = await bob.joined_members(room)
    assert isinstance(members, nio.JoinedMembersResponse), members
    names = {m.user_id: m.display_name for m in members.members}
    assert names == {"@alice:localhost": "Alice A.", "@bob:localhost": "bob"}

    event = await bob.room_get_event(room, sent[0])
    assert isinstance(event, nio.RoomGetEventResponse), event
    assert event.event.body == "n0"
    state = await bob.room_get_state_event(room, "m.room.name")
    assert isinstance(state, nio.RoomGetStateEventResponse) and state.content == {"name": "Nio"}


@pytest.mark.parametrize(
    ("visibility", "membership", "position", "last_join", "expected"),
    [
        ("world_readable", None, (5, 5), None, True),
        ("joined", "join", (5, 5), (1, 1), True),
        ("joined", "leave", (5, 5), (9, 9), False),
        ("shared", None, (5, 5), (9, 9), True),
        ("shared", "leave", (5, 5), (3, 3), False),
        ("shared", None, (5, 5), None, False),
        ("invited", "invite", (5, 5), None, True),
        ("invited", None, (5, 5), (9, 9), False),
    ],
)
def test_may_see_table(visibility, membership, position, last_join, expected):
    assert (
        may_see(
            visibility=visibility, membership=membership, position=position, last_join=last_join
        )
        is expected
    )


def test_more_permissive():
    assert more_permissive("joined", "shared") == "shared"
    assert more_permissive("world_readable", "invited") == "world_readable"
    assert more_permissive("invited", "joined") == "invited"


async def test_context_in_a_room_never_joined_is_forbidden(users):
    alice, dave = await users("alice"), await users("dave")
    room = await alice.create_room(preset="public_chat")
    said = await alice.say(room, "members only")
    status, body = await dave.call("GET", f"/rooms/{room}/context/{said}")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await dave.call("GET", f"/rooms/!nowhere:localhost/context/{said}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_erased_users_messages_are_redacted_for_later_joiners(hs):
    """As in Synapse: after a deactivation with erase, those who were in the
    room when a message was sent still see it; those who joined later see
    it redacted."""
    regs = {name: await hs.register(name, "pw") for name in ("alice", "bob", "carol")}
    alice, bob, carol = (User(hs, n, regs[n]["access_token"]) for n in ("alice", "bob", "carol"))
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    said = await alice.say(room, "body1")
    await carol.join(room)
    assert (await carol.ok("GET", f"/rooms/{room}/event/{said}"))["content"]["body"] == "body1"

    status, challenge = await alice.call("POST", "/account/deactivate", {"erase": True})
    assert status == 401
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw",
        "session": challenge["session"],
    }
    await alice.ok("POST", "/account/deactivate", {"erase": True, "auth": auth})

    assert (await bob.ok("GET", f"/rooms/{room}/event/{said}"))["content"]["body"] == "body1"
    assert (await carol.ok("GET", f"/rooms/{room}/event/{said}"))["content"] == {}
    page = await carol.page(room, dir="b", filter=MESSAGES_ONLY)
    assert [e["content"] for e in page["chunk"]] == [{}]
    assert bodies((await bob.page(room, dir="b", filter=MESSAGES_ONLY))["chunk"]) == ["body1"]
    status, sync = await hs.request("GET", f"{V3}/sync", token=carol.token)
    timeline = sync["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"] for e in timeline if e["event_id"] == said] == [{}]
