"""List filters: is_dm, is_encrypted, is_invite, spaces, room types, tags."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.sliding_sync.helpers import new_user


def lists(**filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "lists": {
            name: {"ranges": [[0, 99]], "timeline_limit": 0, "required_state": [], "filters": f}
            for name, f in filters.items()
        }
    }


async def test_filters(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    dm = await alice.create_room(is_direct=True)
    await alice.call(
        "PUT",
        f"/_matrix/client/v3/user/{alice.user_id}/account_data/m.direct",
        {bob.user_id: [dm]},
    )
    secret = await alice.create_room(
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ]
    )
    space = await alice.create_room(creation_content={"type": "m.space"})
    child = await alice.create_room(name="The Garden Shed")
    await alice.state(space, "m.space.child", {"via": ["localhost"]}, key=child)
    await alice.call(
        "PUT", f"/_matrix/client/v3/user/{alice.user_id}/rooms/{secret}/tags/m.favourite", {}
    )
    invited = await bob.create_room()
    await bob.invite(invited, alice.user_id)
    everything = {dm, secret, space, child, invited}

    body = lists(
        dms={"is_dm": True},
        not_dms={"is_dm": False},
        encrypted={"is_encrypted": True},
        invites={"is_invite": True},
        no_invites={"is_invite": False},
        in_space={"spaces": [space]},
        spaces={"room_types": ["m.space"]},
        not_spaces={"not_room_types": ["m.space"]},
        untyped={"room_types": [None]},
        favourites={"tags": ["m.favourite"]},
        not_favourites={"not_tags": ["m.favourite"]},
        everything={},
        named={"room_name_like": "garden"},
    )
    response = await alice.sync_ok(body)
    counts = {name: v["count"] for name, v in response["lists"].items()}
    assert counts == {
        "dms": 1,
        "not_dms": 4,
        "encrypted": 1,
        "invites": 1,
        "no_invites": 4,
        "in_space": 1,
        "spaces": 1,
        "not_spaces": 4,
        "untyped": 4,
        "favourites": 1,
        "not_favourites": 4,
        "everything": 5,
        "named": 1,
    }
    assert set(response["rooms"]) == everything
    rooms = response["rooms"]
    assert rooms[dm]["is_dm"] is True
    assert "is_dm" not in rooms[secret]


async def test_marking_a_room_as_a_dm_wakes_the_long_poll(hs: RunningServer) -> None:
    import asyncio

    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room()
    body = lists(everything={}, dms={"is_dm": True})
    first = await alice.sync_ok(body)
    assert "is_dm" not in first["rooms"][room]
    poll = asyncio.create_task(alice.sync_ok(body, pos=first["pos"], wait_ms=10_000))
    await asyncio.sleep(0.2)
    await alice.call(
        "PUT",
        f"/_matrix/client/v3/user/{alice.user_id}/account_data/m.direct",
        {bob.user_id: [room]},
    )
    news = await asyncio.wait_for(poll, 5)
    assert news["lists"]["dms"]["count"] == 1
    assert news["rooms"][room]["is_dm"] is True
