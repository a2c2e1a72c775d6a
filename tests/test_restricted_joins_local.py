"""Local users joining local rooms with a restricted join rule: members of an
allowed room get in (their join names a member able to invite), others not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer

CLIENT = "/_matrix/client/v3"
AUTHORISER = "join_authorised_via_users_server"


async def create_room(hs: RunningServer, token: str, **body: Any) -> str:
    status, created = await hs.request("POST", f"{CLIENT}/createRoom", token=token, json=body)
    assert status == 200, created
    return created["room_id"]


async def join(hs: RunningServer, token: str, room_id: str) -> tuple[int, Any]:
    return await hs.request("POST", f"{CLIENT}/join/{room_id}", token=token, json={})


async def member_event(hs: RunningServer, token: str, room_id: str, user_id: str) -> Any:
    status, state = await hs.request("GET", f"{CLIENT}/rooms/{room_id}/state", token=token)
    assert status == 200, state
    return next(e for e in state if e["type"] == "m.room.member" and e["state_key"] == user_id)


@pytest.mark.parametrize(("version", "rule"), [("8", "restricted"), ("12", "knock_restricted")])
async def test_members_of_the_space_join_others_do_not(
    hs: RunningServer, version: str, rule: str
) -> None:
    alice = (await hs.register("alice"))["access_token"]
    bob = (await hs.register("bob"))["access_token"]
    carol = (await hs.register("carol"))["access_token"]
    space = await create_room(
        hs,
        alice,
        room_version=version,
        preset="public_chat",
        creation_content={"type": "m.space"},
    )
    room_id = await create_room(
        hs,
        alice,
        room_version=version,
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": rule,
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    status, body = await join(hs, bob, space)
    assert status == 200, body

    status, body = await join(hs, bob, room_id)
    assert status == 200, body
    event = await member_event(hs, alice, room_id, "@bob:localhost")
    assert event["content"]["membership"] == "join"
    assert event["content"][AUTHORISER] == "@alice:localhost"

    status, body = await join(hs, carol, room_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # An invite is enough on its own: that join names nobody.
    status, body = await hs.request(
        "POST",
        f"{CLIENT}/rooms/{room_id}/invite",
        token=alice,
        json={"user_id": "@carol:localhost"},
    )
    assert status == 200, body
    status, body = await join(hs, carol, room_id)
    assert status == 200, body
    event = await member_event(hs, alice, room_id, "@carol:localhost")
    assert event["content"]["membership"] == "join" and AUTHORISER not in event["content"]

    status, members = await hs.request(
        "GET", f"{CLIENT}/rooms/{room_id}/joined_members", token=alice
    )
    assert set(members["joined"]) == {"@alice:localhost", "@bob:localhost", "@carol:localhost"}
