"""`forget_rooms_on_leave` and the m.forget_forced_upon_leave capability (MSC4267)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import nio
import pytest

V3 = "/_matrix/client/v3"
INCLUDE_LEAVE = quote(json.dumps({"room": {"include_leave": True}}))


@pytest.fixture
async def hs(server_factory: Any) -> Any:
    return await server_factory(forget_rooms_on_leave=True)


async def _forgotten(hs: Any) -> set[tuple[str, str]]:
    rows = await hs.pool.fetch("SELECT user_id, room_id FROM room_forgotten")
    return {(r["user_id"], r["room_id"]) for r in rows}


async def _capability(hs: Any, token: str) -> Any:
    status, body = await hs.request("GET", f"{V3}/capabilities", token=token)
    assert status == 200, body
    return body["capabilities"]["m.forget_forced_upon_leave"]


async def test_capability_is_off_by_default(server_factory):
    plain = await server_factory()
    user = await plain.register("dora")
    assert await _capability(plain, user["access_token"]) == {"enabled": False}


async def test_leaving_kicked_and_banned_users_forget_the_room(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    assert await _capability(hs, bob.access_token) == {"enabled": True}
    created = await alice.room_create(visibility=nio.RoomVisibility.public)
    room_id = created.room_id
    for user in (bob, carol):
        assert isinstance(await user.join(room_id), nio.JoinResponse)
    first = await bob.sync(timeout=0)
    assert room_id in first.rooms.join

    assert isinstance(await bob.room_leave(room_id), nio.RoomLeaveResponse)
    assert await _forgotten(hs) == {("@bob:localhost", room_id)}
    # Bob's other sessions still learn of the leave in their next sync ...
    later = await bob.sync(timeout=0, since=first.next_batch)
    assert room_id in later.rooms.leave
    # ... but the room is gone from a fresh one, even asking for left rooms.
    status, fresh = await hs.request(
        "GET", f"{V3}/sync?filter={INCLUDE_LEAVE}", token=bob.access_token
    )
    assert status == 200 and room_id not in fresh.get("rooms", {}).get("leave", {})

    # A kick forgets it for the one kicked; the room stays for the others.
    assert isinstance(await alice.room_kick(room_id, carol.user_id), nio.RoomKickResponse)
    assert ("@carol:localhost", room_id) in await _forgotten(hs)
    assert ("@alice:localhost", room_id) not in await _forgotten(hs)

    # Joining again brings it back; a ban forgets it again.
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    assert ("@bob:localhost", room_id) not in await _forgotten(hs)
    assert isinstance(await alice.room_ban(room_id, bob.user_id), nio.RoomBanResponse)
    assert ("@bob:localhost", room_id) in await _forgotten(hs)

    # A forgotten room may not be read any more, as after /forget.
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/messages?dir=b", token=carol.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
