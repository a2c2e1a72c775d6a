"""The stable `/v4/sync` (MSC4186 as merged), with the MSC's own examples."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import RunningServer
from tests.sliding_sync.helpers import bodies, new_user


def types(entry: dict[str, Any]) -> set[str]:
    return {e["type"] for e in entry["required_state"]}


async def test_the_msc_example_request_and_response(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    dm = await alice.create_room(name="Alice and Bob", is_direct=True, invite=[bob.user_id])
    await alice.call(
        "PUT",
        f"/_matrix/client/v3/user/{alice.user_id}/account_data/m.direct",
        {bob.user_id: [dm]},
    )
    await alice.state(dm, "m.room.avatar", {"url": "mxc://localhost/abc"})
    await alice.send(dm, "A")
    await alice.send(dm, "B")
    other = await alice.create_room(name="not a dm")
    # The MSC's example request, with our rooms in it.
    request = {
        "conn_id": "main",
        "lists": {
            "foo-list": {
                "range": [0, 99],
                "required_state": {
                    "include": [{"type": "m.room.create", "state_key": ""}],
                    "lazy_members": True,
                },
                "timeline_limit": 10,
                "filters": {"is_dm": True},
            }
        },
        "room_subscriptions": {
            other: {"required_state": {"include": [{}]}, "timeline_limit": 10},
        },
    }
    status, response = await alice.stable(request)
    assert status == 200, response
    assert isinstance(response["pos"], str)
    assert response["lists"] == {"foo-list": {"count": 1}}
    assert set(response["rooms"]) == {dm, other}
    room = response["rooms"][dm]
    assert room["name"] == "Alice and Bob"
    assert room["avatar"] == "mxc://localhost/abc"
    assert room["initial"] is True
    assert room["membership"] == "join"
    assert room["lists"] == ["foo-list"]
    assert room["is_dm"] is True
    # m.room.create, and with lazy members the senders of the timeline.
    assert ("m.room.create", "") in {(e["type"], e["state_key"]) for e in room["required_state"]}
    assert ("m.room.member", alice.user_id) in {
        (e["type"], e["state_key"]) for e in room["required_state"]
    }
    assert bodies(room["timeline_events"])[-2:] == ["A", "B"]
    assert isinstance(room["prev_batch"], str)
    assert room["joined_count"] == 1
    assert room["invited_count"] == 1
    assert room["notification_count"] == 0
    assert room["highlight_count"] == 0
    assert room["num_live"] == 0
    sub = response["rooms"][other]
    # {} in include: every state event; no list, so no `lists`.
    assert {"m.room.create", "m.room.power_levels", "m.room.name", "m.room.member"} <= types(sub)
    assert "lists" not in sub

    # Incremental, with pos and timeout in the body: a long poll.
    poll = asyncio.create_task(alice.stable({**request, "pos": response["pos"], "timeout": 10_000}))
    await asyncio.sleep(0.2)
    await alice.send(dm, "C")
    status, news = await asyncio.wait_for(poll, 5)
    assert status == 200, news
    assert bodies(news["rooms"][dm]["timeline_events"]) == ["C"]
    assert news["rooms"][dm]["num_live"] == 1


async def test_the_msc_required_state_examples(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room(name="r")
    create_and_power = {
        "include": [
            {"type": "m.room.create", "state_key": ""},
            {"type": "m.room.power_levels", "state_key": ""},
        ]
    }
    all_but_create = {"include": [{}], "exclude": [{"type": "m.room.create", "state_key": ""}]}
    for required, check in (
        (create_and_power, lambda t: t == {"m.room.create", "m.room.power_levels"}),
        (
            all_but_create,
            lambda t: "m.room.create" not in t and {"m.room.name", "m.room.member"} <= t,
        ),
        ({"include": [{"state_key": alice.user_id}]}, lambda t: t == {"m.room.member"}),
    ):
        status, response = await alice.stable(
            {"room_subscriptions": {room: {"timeline_limit": 0, "required_state": required}}}
        )
        assert status == 200, response
        assert check(types(response["rooms"][room])), (required, types(response["rooms"][room]))


async def test_stable_invites_have_stripped_state(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(name="party")
    await alice.invite(room, bob.user_id)
    status, response = await bob.stable(
        {"lists": {"invites": {"timeline_limit": 1, "filters": {"is_invited": True}}}}
    )
    assert status == 200, response
    assert response["lists"]["invites"]["count"] == 1
    entry = response["rooms"][room]
    assert entry["membership"] == "invite"
    assert entry["stripped_state"][-1]["content"]["membership"] == "invite"
    assert "invite_state" not in entry
