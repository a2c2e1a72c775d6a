"""Joining, inviting, leaving, forgetting, kicking, banning and knocking, with their errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import nio
import pytest

V3 = "/_matrix/client/v3"


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def member(client: nio.AsyncClient, room_id: str, user_id: str) -> dict[str, Any]:
    """The full member event of `user_id`, as `client` sees it."""
    status, event = await request(
        client, "GET", f"/rooms/{room_id}/state/m.room.member/{user_id}?format=event"
    )
    assert status == 200, event
    return event


async def request(
    client: nio.AsyncClient, method: str, path: str, json: Any = None
) -> tuple[int, Any]:
    """Raw HTTP as `client`'s user, for what nio does not cover."""
    async with client.client_session.request(
        method,
        client.homeserver + V3 + path,
        json=json,
        headers={"Authorization": f"Bearer {client.access_token}"},
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def members(hs: Any, room_id: str) -> dict[str, str]:
    """{user id: membership} of the room's current state, read from the database."""
    rows = await hs.pool.fetch(
        """SELECT state_key, membership FROM current_state
           WHERE room_id = $1 AND type = 'm.room.member'""",
        room_id,
    )
    return {r["state_key"]: r["membership"] for r in rows}


async def event_count(hs: Any, room_id: str) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM events WHERE room_id = $1", room_id)


@pytest.fixture
async def session(hs: Any, login: Any) -> AsyncIterator[Any]:
    """nio clients for the async setup; one helper so tests stay short."""

    # nio's client_session exists only after the first request; whoami makes it.
    async def make(name: str) -> nio.AsyncClient:
        client = await login(name)
        await client.whoami()
        return client

    yield make


async def test_join_public_room_by_id_and_alias(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    carol = await session("carol")
    await bob.set_displayname("Bobby")
    room_id = await create(alice, visibility=nio.RoomVisibility.public, alias="lobby")

    resp = await bob.join(room_id)
    assert isinstance(resp, nio.JoinResponse) and resp.room_id == room_id
    event = await member(alice, room_id, "@bob:localhost")
    assert event["sender"] == "@bob:localhost"
    assert event["content"] == {"membership": "join", "displayname": "Bobby"}

    status, body = await request(carol, "POST", f"/join/{quote('#lobby:localhost')}", {})
    assert (status, body) == (200, {"room_id": room_id})
    status, body = await request(carol, "POST", f"/rooms/{room_id}/join", {})
    assert (status, body) == (200, {"room_id": room_id})
    assert await members(hs, room_id) == {
        "@alice:localhost": "join",
        "@bob:localhost": "join",
        "@carol:localhost": "join",
    }
    # Joining again changes nothing: no second member event.
    before = await event_count(hs, room_id)
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    assert await event_count(hs, room_id) == before
    rooms = await carol.joined_rooms()
    assert isinstance(rooms, nio.JoinedRoomsResponse) and rooms.rooms == [room_id]


async def test_join_keeps_custom_content(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    carol = await session("carol")
    room_id = await create(alice, visibility=nio.RoomVisibility.public, alias="club")
    status, _ = await request(
        bob,
        "POST",
        f"/rooms/{room_id}/join",
        {"foo": "bar", "reason": "hi", "third_party_signed": {"x": 1}},
    )
    assert status == 200
    event = await member(alice, room_id, "@bob:localhost")
    assert event["content"] == {
        "membership": "join",
        "displayname": "bob",
        "foo": "bar",
        "reason": "hi",
    }
    # By alias too; the membership itself is not the client's to set.
    status, _ = await request(
        carol, "POST", f"/join/{quote('#club:localhost')}", {"foo": 1, "membership": "leave"}
    )
    assert status == 200
    event = await member(alice, room_id, "@carol:localhost")
    assert event["content"] == {"membership": "join", "displayname": "carol", "foo": 1}


async def test_invite_only_room(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    await alice.set_displayname("Alice")
    await bob.set_displayname("Bob")
    room_id = await create(alice, room_version="10")
    before = await event_count(hs, room_id)

    refused = await bob.join(room_id)
    assert isinstance(refused, nio.JoinError) and refused.status_code == "M_FORBIDDEN"
    assert await members(hs, room_id) == {"@alice:localhost": "join"}
    assert await event_count(hs, room_id) == before

    assert isinstance(await alice.room_invite(room_id, "@bob:localhost"), nio.RoomInviteResponse)
    invite = await member(alice, room_id, "@bob:localhost")
    assert invite["sender"] == "@alice:localhost"
    # Like Synapse, the invite carries the invitee's profile.
    assert invite["content"] == {"membership": "invite", "displayname": "Bob"}
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    assert await members(hs, room_id) == {"@alice:localhost": "join", "@bob:localhost": "join"}


async def test_leave_then_forget(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    await bob.join(room_id)

    refused = await bob.room_forget(room_id)
    assert isinstance(refused, nio.RoomForgetError) and refused.status_code == "M_UNKNOWN"
    assert refused.transport_response.status == 400
    assert not await hs.pool.fetchval("SELECT count(*) FROM room_forgotten")

    assert isinstance(await bob.room_leave(room_id), nio.RoomLeaveResponse)
    left = await member(alice, room_id, "@bob:localhost")
    assert left["content"] == {"membership": "leave"}
    assert left["unsigned"]["prev_content"]["membership"] == "join"
    assert (await bob.joined_rooms()).rooms == []
    assert isinstance(await bob.room_forget(room_id), nio.RoomForgetResponse)
    assert await hs.pool.fetch("SELECT user_id, room_id FROM room_forgotten") == [
        ("@bob:localhost", room_id)
    ]
    # Joining again brings the room back.
    await bob.join(room_id)
    assert (await bob.joined_rooms()).rooms == [room_id]
    assert not await hs.pool.fetchval("SELECT count(*) FROM room_forgotten")

    status, body = await request(bob, "POST", "/rooms/!nowhere:localhost/forget", {})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_kick_needs_power_and_a_member(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    carol = await session("carol")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    await bob.join(room_id)
    await carol.join(room_id)
    before = await event_count(hs, room_id)

    refused = await bob.room_kick(room_id, "@carol:localhost")
    assert isinstance(refused, nio.RoomKickError) and refused.status_code == "M_FORBIDDEN"
    assert refused.transport_response.status == 403
    assert await event_count(hs, room_id) == before

    assert isinstance(
        await alice.room_kick(room_id, "@carol:localhost", reason="spam"), nio.RoomKickResponse
    )
    kicked = await member(alice, room_id, "@carol:localhost")
    assert kicked["sender"] == "@alice:localhost"
    assert kicked["content"] == {"membership": "leave", "reason": "spam"}

    # Kicking someone who is not in the room is refused (as in Synapse).
    again = await alice.room_kick(room_id, "@carol:localhost")
    assert isinstance(again, nio.RoomKickError) and again.status_code == "M_FORBIDDEN"
    stranger = await alice.room_kick(room_id, "@nobody:localhost")
    assert isinstance(stranger, nio.RoomKickError) and stranger.status_code == "M_FORBIDDEN"
    # Kicking an invitee withdraws the invite; the invitee may also decline by leaving.
    await alice.room_invite(room_id, "@dave:localhost")
    assert isinstance(await alice.room_kick(room_id, "@dave:localhost"), nio.RoomKickResponse)
    assert (await member(alice, room_id, "@dave:localhost"))["content"] == {"membership": "leave"}
    dave = await session("dave")
    await alice.room_invite(room_id, "@dave:localhost")
    assert isinstance(await dave.room_leave(room_id), nio.RoomLeaveResponse)
    declined = await member(alice, room_id, "@dave:localhost")
    assert declined["sender"] == "@dave:localhost"
    assert declined["unsigned"]["prev_content"]["membership"] == "invite"
    assert await members(hs, room_id) == {
        "@alice:localhost": "join",
        "@bob:localhost": "join",
        "@carol:localhost": "leave",
        "@dave:localhost": "leave",
    }


async def test_ban_and_unban(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    await bob.join(room_id)

    refused = await bob.room_ban(room_id, "@alice:localhost")
    assert isinstance(refused, nio.RoomBanError) and refused.status_code == "M_FORBIDDEN"
    assert isinstance(await alice.room_ban(room_id, "@bob:localhost", "rude"), nio.RoomBanResponse)
    banned = await member(alice, room_id, "@bob:localhost")
    assert banned["content"] == {"membership": "ban", "reason": "rude"}
    assert (await bob.joined_rooms()).rooms == []

    before = await event_count(hs, room_id)
    rejoin = await bob.join(room_id)
    assert isinstance(rejoin, nio.JoinError) and rejoin.status_code == "M_FORBIDDEN"
    assert rejoin.transport_response.status == 403
    invite = await alice.room_invite(room_id, "@bob:localhost")
    assert isinstance(invite, nio.RoomInviteError)
    assert invite.transport_response.status == 403
    assert await event_count(hs, room_id) == before

    # A ban may come before the user ever joins.
    assert isinstance(await alice.room_ban(room_id, "@eve:localhost"), nio.RoomBanResponse)
    assert (await members(hs, room_id))["@eve:localhost"] == "ban"
    assert isinstance(await alice.room_unban(room_id, "@bob:localhost"), nio.RoomUnbanResponse)
    unbanned = await member(alice, room_id, "@bob:localhost")
    assert unbanned["content"] == {"membership": "leave"}
    assert unbanned["unsigned"]["prev_content"]["membership"] == "ban"
    # Unbanning someone who is not banned is not a kick in disguise.
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    status, body = await request(
        alice, "POST", f"/rooms/{room_id}/unban", {"user_id": "@bob:localhost"}
    )
    assert (status, body["errcode"]) == (403, "M_BAD_STATE")
    assert (await members(hs, room_id))["@bob:localhost"] == "join"


async def test_knock_then_invite_then_join(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    room_id = await create(
        alice,
        room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    refused = await bob.join(room_id)
    assert isinstance(refused, nio.JoinError) and refused.status_code == "M_FORBIDDEN"

    status, body = await request(bob, "POST", f"/knock/{room_id}", {"reason": "let me in"})
    assert (status, body) == (200, {"room_id": room_id})
    knock = await member(alice, room_id, "@bob:localhost")
    assert knock["sender"] == "@bob:localhost"
    assert knock["content"] == {"membership": "knock", "displayname": "bob", "reason": "let me in"}
    # A knocker is not in the room yet.
    send = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(send, nio.RoomSendError) and send.status_code == "M_FORBIDDEN"

    assert isinstance(await alice.room_invite(room_id, "@bob:localhost"), nio.RoomInviteResponse)
    assert (await members(hs, room_id))["@bob:localhost"] == "invite"
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    assert (await members(hs, room_id))["@bob:localhost"] == "join"

    # Knocking is for rooms with the knock join rule, in room versions that have it.
    old = await create(alice, room_version="6", visibility=nio.RoomVisibility.public)
    carol = await session("carol")
    status, body = await request(carol, "POST", f"/knock/{old}", {})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert "@carol:localhost" not in await members(hs, old)


async def test_unknown_rooms_and_aliases(hs, session):
    bob = await session("bob")
    unknown = await bob.join("!nowhere:localhost")
    assert isinstance(unknown, nio.JoinError) and unknown.status_code == "M_NOT_FOUND"
    assert unknown.transport_response.status == 404
    unknown = await bob.join("#nowhere:localhost")
    assert isinstance(unknown, nio.JoinError) and unknown.status_code == "M_NOT_FOUND"
    for path, body in [
        ("/rooms/!nowhere:localhost/join", {}),
        ("/rooms/!nowhere:localhost/leave", {}),
        ("/rooms/!nowhere:localhost/invite", {"user_id": "@alice:localhost"}),
        ("/rooms/!nowhere:localhost/kick", {"user_id": "@alice:localhost"}),
        ("/rooms/!nowhere:localhost/ban", {"user_id": "@alice:localhost"}),
        (f"/knock/{quote('#nowhere:localhost')}", {}),
    ]:
        status, got = await request(bob, "POST", path, body)
        assert (status, got["errcode"]) == (404, "M_NOT_FOUND"), path
    status, got = await request(bob, "POST", "/join/nowhere", {})
    assert (status, got["errcode"]) == (400, "M_INVALID_PARAM")


async def test_bad_membership_requests_write_nothing(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    await bob.join(room_id)
    before = await event_count(hs, room_id)
    for path, body, errcode in [
        (f"/rooms/{room_id}/invite", {"user_id": "carol"}, "M_INVALID_PARAM"),
        (f"/rooms/{room_id}/invite", {"user_id": 7}, "M_BAD_JSON"),
        (f"/rooms/{room_id}/invite", {}, "M_MISSING_PARAM"),
        (f"/rooms/{room_id}/kick", [], "M_BAD_JSON"),
        (f"/rooms/{room_id}/ban", {"user_id": "@carol:localhost", "reason": 1}, "M_BAD_JSON"),
        (f"/rooms/{room_id}/leave", {"reason": ["no"]}, "M_BAD_JSON"),
    ]:
        status, got = await request(alice, "POST", path, body)
        assert (status, got["errcode"]) == (400, errcode), (path, body)
    # A member without the power to invite in a room where inviting needs 50.
    status, got = await request(bob, "POST", f"/rooms/{room_id}/invite", {"user_id": "@c:x"})
    assert (status, got["errcode"]) == (403, "M_FORBIDDEN")
    assert await event_count(hs, room_id) == before
    assert await members(hs, room_id) == {"@alice:localhost": "join", "@bob:localhost": "join"}


async def test_message_from_non_member_is_refused(hs, session):
    alice = await session("alice")
    bob = await session("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    before = await event_count(hs, room_id)
    resp = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(resp, nio.RoomSendError) and resp.status_code == "M_FORBIDDEN"
    assert resp.transport_response.status == 403
    # Nor may they read the room's state.
    state = await bob.room_get_state(room_id)
    assert isinstance(state, nio.RoomGetStateError) and state.status_code == "M_FORBIDDEN"
    assert await event_count(hs, room_id) == before
