"""The user directory, and profile changes reaching member events, as clients see them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nio
import pytest

V3 = "/_matrix/client/v3"


@pytest.fixture
async def clients() -> AsyncIterator[Any]:
    """Registers users on a server and returns logged-in nio clients; closes them afterwards."""
    made: list[nio.AsyncClient] = []

    async def make(server: Any, name: str) -> nio.AsyncClient:
        body = await server.register(name)
        client = nio.AsyncClient(server.url, body["user_id"])
        client.restore_login(body["user_id"], body["device_id"], body["access_token"])
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def search(server: Any, client: nio.AsyncClient, term: str, **extra: Any) -> dict[str, Any]:
    status, body = await server.request(
        "POST",
        f"{V3}/user_directory/search",
        token=client.access_token,
        json={"search_term": term, **extra},
    )
    assert status == 200, body
    return body


async def found(server: Any, client: nio.AsyncClient, term: str) -> list[str]:
    return [r["user_id"] for r in (await search(server, client, term))["results"]]


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def shared_room(owner: nio.AsyncClient, *others: nio.AsyncClient) -> str:
    """A private room that `owner` and `others` have all joined."""
    room_id = await create(owner, invite=[o.user_id for o in others])
    for other in others:
        assert isinstance(await other.join(room_id), nio.JoinResponse)
    return room_id


async def set_name(client: nio.AsyncClient, name: str) -> None:
    assert isinstance(await client.set_displayname(name), nio.ProfileSetDisplayNameResponse)


async def member_content(client: nio.AsyncClient, room_id: str, user_id: str) -> dict[str, Any]:
    resp = await client.room_get_state_event(room_id, "m.room.member", user_id)
    assert isinstance(resp, nio.RoomGetStateEventResponse), resp
    return resp.content


async def member_event_id(server: Any, client: nio.AsyncClient, room_id: str, user_id: str) -> str:
    status, event = await server.request(
        "GET",
        f"{V3}/rooms/{room_id}/state/m.room.member/{user_id}?format=event",
        token=client.access_token,
    )
    assert status == 200, event
    return event["event_id"]


async def test_display_name_is_found_after_it_changes_and_not_before(hs, clients):
    alice = await clients(hs, "alice")
    bob = await clients(hs, "bob")
    await shared_room(alice, bob)
    assert await found(hs, alice, "Zebediah") == []
    assert await found(hs, alice, "bob") == [bob.user_id]

    await set_name(bob, "Zebediah Quux")
    body = await search(hs, alice, "zebed")
    assert body == {
        "results": [{"user_id": bob.user_id, "display_name": "Zebediah Quux"}],
        "limited": False,
    }
    assert await found(hs, alice, "QUUX") == [bob.user_id]
    assert await found(hs, alice, "zebediah qu") == [bob.user_id]
    # The old display name ("bob", set at registration) is gone; the user id still matches.
    await set_name(bob, "Robert")
    assert await found(hs, alice, "zebediah") == []
    assert await found(hs, alice, "robert") == [bob.user_id]
    assert await found(hs, alice, "@bob:localhost") == [bob.user_id]

    assert isinstance(await bob.set_avatar("mxc://localhost/face"), nio.ProfileSetAvatarResponse)
    assert (await search(hs, alice, "rob"))["results"] == [
        {"user_id": bob.user_id, "display_name": "Robert", "avatar_url": "mxc://localhost/face"}
    ]


async def test_profile_change_updates_member_events_in_joined_rooms(hs, clients):
    alice = await clients(hs, "alice")
    bob = await clients(hs, "bob")
    first = await shared_room(alice, bob)
    second = await shared_room(bob, alice)
    left = await shared_room(alice, bob)
    assert isinstance(await bob.room_leave(left), nio.RoomLeaveResponse)

    await set_name(bob, "Bobby Tables")
    assert isinstance(await bob.set_avatar("mxc://localhost/bobby"), nio.ProfileSetAvatarResponse)
    for room_id in (first, second):
        # What another member of the room sees.
        content = await member_content(alice, room_id, bob.user_id)
        assert content == {
            "membership": "join",
            "displayname": "Bobby Tables",
            "avatar_url": "mxc://localhost/bobby",
        }
    # A room the user left keeps their leave event.
    assert (await member_content(alice, left, bob.user_id))["membership"] == "leave"
    # Alice's own member events are untouched.
    assert (await member_content(bob, first, alice.user_id))["displayname"] == "alice"

    # The sync timeline shows the change as a member event from bob.
    resp = await alice.sync(timeout=0, full_state=True)
    assert isinstance(resp, nio.SyncResponse), resp
    events = resp.rooms.join[first].timeline.events
    member_events = [e for e in events if isinstance(e, nio.RoomMemberEvent)]
    assert member_events[-1].state_key == bob.user_id
    assert member_events[-1].content["displayname"] == "Bobby Tables"

    # Setting the same name again adds no event.
    before = await member_event_id(hs, alice, first, bob.user_id)
    await set_name(bob, "Bobby Tables")
    assert await member_event_id(hs, alice, first, bob.user_id) == before


async def put_state(client: nio.AsyncClient, room_id: str, type: str, content: dict) -> None:
    resp = await client.room_put_state(room_id, type, content)
    assert isinstance(resp, nio.RoomPutStateResponse), resp


async def test_strangers_are_found_only_through_public_rooms(hs, clients):
    alice = await clients(hs, "alice")
    carol = await clients(hs, "carol")
    dave = await clients(hs, "dave")
    assert await found(hs, alice, "carol") == []

    # Carol is in a private room with dave: dave finds her, alice does not.
    private = await shared_room(carol, dave)
    assert await found(hs, dave, "carol") == [carol.user_id]
    assert await found(hs, alice, "carol") == []

    # A public room makes its members findable by everyone, the searcher too.
    public = await create(carol, preset=nio.RoomPreset.public_chat)
    assert await found(hs, alice, "carol") == [carol.user_id]
    assert await found(hs, carol, "carol") == [carol.user_id]
    await put_state(carol, public, "m.room.join_rules", {"join_rule": "invite"})
    assert await found(hs, alice, "carol") == []
    # So does world-readable history.
    await put_state(
        carol, public, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    assert await found(hs, alice, "carol") == [carol.user_id]
    assert isinstance(await carol.room_leave(public), nio.RoomLeaveResponse)
    assert await found(hs, alice, "carol") == []

    # Only in a private room, one does not find oneself; leaving ends the sharing.
    assert await found(hs, carol, "carol") == []
    assert await found(hs, dave, "carol") == [carol.user_id]
    assert isinstance(await dave.room_leave(private), nio.RoomLeaveResponse)
    assert await found(hs, dave, "carol") == []
    # An invite is not a shared room.
    await create(carol, invite=[alice.user_id])
    assert await found(hs, alice, "carol") == []


async def test_search_all_users_finds_every_local_user_but_the_searcher(server_factory, clients):
    hs = await server_factory(user_directory={"search_all_users": True})
    alice = await clients(hs, "alice")
    erin = await clients(hs, "erin")
    assert await found(hs, alice, "erin") == [erin.user_id]
    assert await found(hs, alice, "alice") == []
    await create(alice, preset=nio.RoomPreset.public_chat)
    assert await found(hs, alice, "alice") == []


async def test_default_server_does_not_list_users_in_no_room(hs, clients):
    alice = await clients(hs, "alice")
    await clients(hs, "erin")
    assert await found(hs, alice, "erin") == []


async def test_deactivated_users_are_not_found(hs, clients):
    alice = await clients(hs, "alice")
    frank = await clients(hs, "frank")
    await shared_room(alice, frank)
    assert await found(hs, alice, "frank") == [frank.user_id]
    status, body = await hs.request(
        "POST",
        f"{V3}/account/deactivate",
        token=frank.access_token,
        json={
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "frank"},
                "password": "secret",
            }
        },
    )
    assert status == 200, body
    assert await found(hs, alice, "frank") == []


async def test_limit_and_limited(hs, clients):
    alice = await clients(hs, "alice")
    members = [await clients(hs, f"member{i}") for i in range(5)]
    await shared_room(alice, *members)
    everyone = sorted(m.user_id for m in members)

    body = await search(hs, alice, "member", limit=3)
    assert body["limited"] is True
    assert len(body["results"]) == 3
    body = await search(hs, alice, "member", limit=5)
    assert body["limited"] is False
    assert sorted(r["user_id"] for r in body["results"]) == everyone
    body = await search(hs, alice, "member")
    assert (len(body["results"]), body["limited"]) == (5, False)
    body = await search(hs, alice, "member", limit=0)
    assert body == {"results": [], "limited": True}
    # Words and punctuation that match nothing.
    assert await search(hs, alice, "") == {"results": [], "limited": False}
    assert await search(hs, alice, "(*&") == {"results": [], "limited": False}
    assert await search(hs, alice, "member nobody") == {"results": [], "limited": False}


async def test_exact_and_prefix_matches_rank_first(hs, clients):
    alice = await clients(hs, "alice")
    users = {
        name: await clients(hs, f"u{i}")
        for i, name in enumerate(["Marie Ann-Sophie", "Annabelle", "Ann"])
    }
    for name, client in users.items():
        await set_name(client, name)
    await shared_room(alice, *users.values())
    order = await found(hs, alice, "ann")
    assert order == [users[n].user_id for n in ["Ann", "Annabelle", "Marie Ann-Sophie"]]
    # A user id's localpart counts like a display name.
    annie = await clients(hs, "ann")
    await set_name(annie, "Someone Else")
    await shared_room(alice, annie)
    assert set((await found(hs, alice, "ann"))[:2]) == {users["Ann"].user_id, annie.user_id}


async def test_bad_requests_are_refused(hs, clients):
    alice = await clients(hs, "alice")
    path = f"{V3}/user_directory/search"
    status, body = await hs.request("POST", path, json={"search_term": "x"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await hs.request("POST", path, token=alice.access_token, json={})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    for bad in (
        {"search_term": 5},
        {"search_term": "x", "limit": "3"},
        {"search_term": "x", "limit": True},
    ):
        status, body = await hs.request("POST", path, token=alice.access_token, json=bad)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
