"""Room summaries (MSC3266, spec v1.15) over real HTTP: the stable path and
the unstable ones clients call, with and without authentication."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import nio

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
UNSTABLE = "/_matrix/client/unstable/im.nheko.summary"


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def summary(hs: Any, target: str, token: str | None = None, path: str = "stable") -> Any:
    quoted = quote(target, safe="")
    url = {
        "stable": f"{V1}/room_summary/{quoted}",
        "unstable": f"{UNSTABLE}/summary/{quoted}",
        "older": f"{UNSTABLE}/rooms/{quoted}/summary",
    }[path]
    return await hs.request("GET", url, token=token)


async def test_summary_of_a_public_space_for_members_strangers_and_anyone(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(
        alice,
        name="Cheese",
        topic="Tasty",
        alias="cheese",
        space=True,
        visibility=nio.RoomVisibility.public,
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    status, body = await summary(hs, room, alice.access_token)
    assert status == 200, body
    assert body == {
        "room_id": room,
        "name": "Cheese",
        "topic": "Tasty",
        "canonical_alias": "#cheese:localhost",
        "num_joined_members": 1,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
        "room_type": "m.space",
        "encryption": "m.megolm.v1.aes-sha2",
        "room_version": body["room_version"],
        "membership": "join",
    }
    # By alias, on every path; a stranger's membership is "leave".
    for path in ("stable", "unstable", "older"):
        status, other = await summary(hs, "#cheese:localhost", bob.access_token, path)
        assert status == 200, (path, other)
        assert other["room_id"] == room and other["membership"] == "leave"
    # Without a token: the room is public, so anyone sees it, with no membership.
    status, anyone = await summary(hs, room)
    assert status == 200, anyone
    assert "membership" not in anyone and anyone["name"] == "Cheese"


async def test_private_rooms_are_hidden_except_from_members_and_invitees(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    room = await create(alice, name="Secret")
    for token in (bob.access_token, None):
        status, body = await summary(hs, room, token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, _ = await hs.request(
        "POST", f"{V3}/rooms/{room}/invite", token=alice.access_token, json={"user_id": bob.user_id}
    )
    assert status == 200
    status, body = await summary(hs, room, bob.access_token)
    assert status == 200 and body["membership"] == "invite" and body["join_rule"] == "invite"
    status, body = await summary(hs, room, carol.access_token)
    assert status == 404


async def test_restricted_room_names_its_allowed_rooms(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    space = await create(alice, space=True, visibility=nio.RoomVisibility.public)
    status, created = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=alice.access_token,
        json={
            "room_version": "10",
            "initial_state": [
                {
                    "type": "m.room.join_rules",
                    "state_key": "",
                    "content": {
                        "join_rule": "restricted",
                        "allow": [{"type": "m.room_membership", "room_id": space}],
                    },
                }
            ],
        },
    )
    assert status == 200, created
    room = created["room_id"]
    assert isinstance(await bob.join(space), nio.JoinResponse)
    # A member of the space may see it; someone outside may not.
    status, body = await summary(hs, room, bob.access_token)
    assert status == 200, body
    assert body["allowed_room_ids"] == [space] and body["join_rule"] == "restricted"
    assert body["room_version"] == "10" and body["membership"] == "leave"
    status, _ = await summary(hs, room, carol.access_token)
    assert status == 404


async def test_world_readable_room_for_anyone(hs, login):
    alice = await login("alice")
    room = await create(
        alice,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    status, body = await summary(hs, room)
    assert status == 200, body
    assert body["world_readable"] is True and body["join_rule"] == "invite"


async def test_bad_and_unknown_targets(hs, login):
    alice = await login("alice")
    for target, status, errcode in (
        ("!nowhere:localhost", 404, "M_NOT_FOUND"),
        ("#nowhere:localhost", 404, "M_NOT_FOUND"),
        ("nothing", 400, "M_INVALID_PARAM"),
    ):
        got, body = await summary(hs, target, alice.access_token)
        assert (got, body["errcode"]) == (status, errcode), target


async def test_bad_token_is_refused_not_ignored(hs):
    status, body = await summary(hs, "!x:localhost", "not-a-token")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_versions_advertise_the_summary(hs):
    status, body = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200 and body["unstable_features"]["im.nheko.summary"] is True
