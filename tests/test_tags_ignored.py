"""Room tags (raw HTTP: nio has no tag calls) and ignored users, as the
client sees them through the tags API, /sync and /messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import nio
import pytest

V3 = "/_matrix/client/v3"

Login = Callable[..., Any]


@pytest.fixture
async def login(hs: Any) -> AsyncIterator[Login]:
    """Registers a user and returns a logged-in nio client for them."""
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


def tags_path(user_id: str, room_id: str, tag: str | None = None) -> str:
    path = f"{V3}/user/{quote(user_id)}/rooms/{quote(room_id)}/tags"
    return path if tag is None else f"{path}/{quote(tag)}"


async def get_tags(hs: Any, client: nio.AsyncClient, room_id: str) -> dict[str, Any]:
    status, body = await hs.request(
        "GET", tags_path(client.user_id, room_id), token=client.access_token
    )
    assert status == 200, body
    return body["tags"]


async def sync(client: nio.AsyncClient, since: str | None = None) -> nio.SyncResponse:
    resp = await client.sync(timeout=0, since=since)
    assert isinstance(resp, nio.SyncResponse), resp
    return resp


def room_tags(resp: nio.SyncResponse, room_id: str) -> list[dict[str, Any]]:
    """The tags of each m.tag event in the room's account data of a sync response."""
    room = resp.rooms.join.get(room_id)
    events = room.account_data if room is not None else []
    return [e.tags for e in events if isinstance(e, nio.TagEvent)]


async def new_room(client: nio.AsyncClient, *invite: str) -> str:
    created = await client.room_create(invite=list(invite))
    assert isinstance(created, nio.RoomCreateResponse), created
    return created.room_id


async def test_tags_round_trip_and_reach_sync(hs: Any, login: Login) -> None:
    alice = await login("alice")
    room = await new_room(alice)
    token = (await sync(alice)).next_batch
    assert await get_tags(hs, alice, room) == {}

    for tag, body in (("m.favourite", {"order": 0.25}), ("u.work", {})):
        status, resp = await hs.request(
            "PUT", tags_path(alice.user_id, room, tag), token=alice.access_token, json=body
        )
        assert status == 200, resp
    assert await get_tags(hs, alice, room) == {"m.favourite": {"order": 0.25}, "u.work": {}}

    resp = await sync(alice, token)
    assert room_tags(resp, room) == [{"m.favourite": {"order": 0.25}, "u.work": {}}]
    token = resp.next_batch

    status, _ = await hs.request(
        "DELETE", tags_path(alice.user_id, room, "m.favourite"), token=alice.access_token
    )
    assert status == 200
    # Deleting a tag the room does not have is no error.
    status, _ = await hs.request(
        "DELETE", tags_path(alice.user_id, room, "m.lowpriority"), token=alice.access_token
    )
    assert status == 200
    assert await get_tags(hs, alice, room) == {"u.work": {}}
    assert room_tags(await sync(alice, token), room) == [{"u.work": {}}]
    # An initial sync has them too.
    status, body = await hs.request("GET", f"{V3}/sync", token=alice.access_token)
    assert status == 200, body
    assert body["rooms"]["join"][room]["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {"u.work": {}}}}
    ]


async def test_tags_of_others_and_bad_tags_are_refused(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    room = await new_room(alice, bob.user_id)
    path = tags_path(alice.user_id, room, "u.work")
    status, _ = await hs.request("PUT", path, token=alice.access_token, json={"order": 0.5})
    assert status == 200

    for method, body in (("GET", None), ("PUT", {}), ("DELETE", None)):
        target = tags_path(alice.user_id, room) if method == "GET" else path
        status, error = await hs.request(method, target, token=bob.access_token, json=body)
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN"), method

    cases = [
        (path, {"order": "first"}, "M_BAD_JSON"),
        (path, {"order": True}, "M_BAD_JSON"),
        (path, ["not", "an", "object"], "M_BAD_JSON"),
        (tags_path(alice.user_id, room, "x" * 256), {}, "M_INVALID_PARAM"),
        (tags_path(alice.user_id, "not-a-room", "u.work"), {}, "M_INVALID_PARAM"),
    ]
    for target, body, errcode in cases:
        status, error = await hs.request("PUT", target, token=alice.access_token, json=body)
        assert (status, error["errcode"]) == (400, errcode), body

    assert await get_tags(hs, alice, room) == {"u.work": {"order": 0.5}}


async def ignore(hs: Any, client: nio.AsyncClient, *users: str) -> None:
    status, body = await hs.request(
        "PUT",
        f"{V3}/user/{quote(client.user_id)}/account_data/m.ignored_user_list",
        token=client.access_token,
        json={"ignored_users": {u: {} for u in users}},
    )
    assert status == 200, body


async def say(client: nio.AsyncClient, room_id: str, text: str) -> None:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
    assert isinstance(resp, nio.RoomSendResponse), resp


def renames(events: list[Any]) -> list[tuple[str, str]]:
    """(user, new display name) of the member events that changed a display name."""
    return [
        (e.state_key, e.content["displayname"])
        for e in events
        if isinstance(e, nio.RoomMemberEvent)
        and e.prev_content
        and e.prev_content.get("displayname") != e.content.get("displayname")
    ]


def texts(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.sender, e.body) for e in events if isinstance(e, nio.RoomMessageText)]


async def test_an_ignored_users_messages_are_not_delivered(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    room = await new_room(alice, bob.user_id, carol.user_id)
    for member in (bob, carol):
        assert isinstance(await member.join(room), nio.JoinResponse)
    await ignore(hs, bob, carol.user_id)
    token = (await sync(bob)).next_batch

    await say(alice, room, "hello from alice")
    await say(carol, room, "hello from carol")
    renamed = await carol.room_put_state(
        room,
        "m.room.member",
        {"membership": "join", "displayname": "Carol C"},
        state_key=carol.user_id,
    )
    assert isinstance(renamed, nio.RoomPutStateResponse), renamed
    await say(alice, room, "bye from alice")

    expected = [(alice.user_id, "hello from alice"), (alice.user_id, "bye from alice")]
    timeline = (await sync(bob, token)).rooms.join[room].timeline.events
    assert texts(timeline) == expected
    # State events of ignored users still arrive: the room must look the same.
    assert renames(timeline) == [(carol.user_id, "Carol C")]

    page = await bob.room_messages(room, limit=50)
    assert isinstance(page, nio.RoomMessagesResponse), page
    assert texts(page.chunk[::-1]) == expected
    assert renames(page.chunk) == [(carol.user_id, "Carol C")]

    # Others still see carol.
    page = await alice.room_messages(room, limit=50)
    assert isinstance(page, nio.RoomMessagesResponse), page
    assert (carol.user_id, "hello from carol") in texts(page.chunk)

    # Not ignored any more: carol's new messages come through again.
    await ignore(hs, bob)
    await say(carol, room, "are you there?")
    page = await bob.room_messages(room, limit=1)
    assert isinstance(page, nio.RoomMessagesResponse), page
    assert texts(page.chunk) == [(carol.user_id, "are you there?")]


async def test_an_ignored_users_invites_are_not_delivered(hs: Any, login: Login) -> None:
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    await ignore(hs, bob, carol.user_id)
    token = (await sync(bob)).next_batch

    await new_room(carol, bob.user_id)
    from_alice = await new_room(alice, bob.user_id)

    assert set((await sync(bob, token)).rooms.invite) == {from_alice}
    status, body = await hs.request("GET", f"{V3}/sync", token=bob.access_token)
    assert status == 200, body
    assert set(body["rooms"]["invite"]) == {from_alice}
