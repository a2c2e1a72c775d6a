"""Invite blocking (MSC4380, spec v1.18): a user whose
m.invite_permission_config says "block" is refused every local invite with
403 M_INVITE_BLOCKED (nothing is sent), and invites already there are kept
out of /sync and sliding sync until blocking stops. Driven with matrix-nio
where it has the call. Invites over federation: tests/federation/
test_synapse_invite_blocking.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nio
import pytest

from tests.sliding_sync.helpers import UNSTABLE as SLIDING

V3 = "/_matrix/client/v3"
CONFIG = "m.invite_permission_config"


async def _set_config(hs: Any, user: dict[str, Any], content: Any, kind: str = CONFIG) -> None:
    path = f"{V3}/user/{user['user_id']}/account_data/{kind}"
    status, _ = await hs.request("PUT", path, token=user["access_token"], json=content)
    assert status == 200


@pytest.fixture
async def clients(hs: Any) -> AsyncIterator[dict[str, Any]]:
    """Alice and Bob, registered, with a matrix-nio client each."""
    made: dict[str, Any] = {}
    for name in ("alice", "bob"):
        body = await hs.register(name)
        client = nio.AsyncClient(hs.url, body["user_id"])
        client.restore_login(body["user_id"], body["device_id"], body["access_token"])
        made[name] = client
        made[f"{name}_body"] = body
    yield made
    for name in ("alice", "bob"):
        await made[name].close()


async def _invited_rooms(client: nio.AsyncClient) -> set[str]:
    client.next_batch = None
    synced = await client.sync(timeout=0, full_state=True)
    assert isinstance(synced, nio.SyncResponse), synced
    return set(synced.rooms.invite)


async def _sliding_invites(hs: Any, token: str) -> set[str]:
    body = {"lists": {"all": {"ranges": [[0, 20]], "timeline_limit": 1}}}
    status, result = await hs.request("POST", SLIDING, token=token, json=body)
    assert status == 200, result
    return {room_id for room_id, room in result.get("rooms", {}).items() if "invite_state" in room}


async def test_blocked_invites_are_refused_and_hidden(hs, clients):
    alice, bob = clients["alice"], clients["bob"]
    bob_body = clients["bob_body"]
    before = await alice.room_create(name="Before")
    assert isinstance(before, nio.RoomCreateResponse)
    assert isinstance(await alice.room_invite(before.room_id, bob.user_id), nio.RoomInviteResponse)
    assert await _invited_rooms(bob) == {before.room_id}

    await _set_config(hs, bob_body, {"default_action": "block"})

    # The invite that was already there is hidden from Bob's syncs.
    assert await _invited_rooms(bob) == set()
    assert await _sliding_invites(hs, bob_body["access_token"]) == set()
    # ... but not from the room's state (the spec's rule).
    member = await alice.room_get_state_event(before.room_id, "m.room.member", bob.user_id)
    assert member.content["membership"] == "invite"

    # New invites are refused, by every way of sending one.
    room = await alice.room_create(name="After")
    refused = await alice.room_invite(room.room_id, bob.user_id)
    assert isinstance(refused, nio.RoomInviteError)
    assert refused.status_code == "M_INVITE_BLOCKED"
    put = await alice.room_put_state(
        room.room_id, "m.room.member", {"membership": "invite"}, state_key=bob.user_id
    )
    assert isinstance(put, nio.RoomPutStateError) and put.status_code == "M_INVITE_BLOCKED"
    rooms_before = set((await alice.joined_rooms()).rooms)
    created = await alice.room_create(name="DM", invite=[bob.user_id], is_direct=True)
    assert isinstance(created, nio.RoomCreateError)
    assert created.status_code == "M_INVITE_BLOCKED"
    # Nothing happened: no membership for Bob, no new room for Alice.
    member = await alice.room_get_state_event(room.room_id, "m.room.member", bob.user_id)
    assert isinstance(member, nio.RoomGetStateEventError)
    assert set((await alice.joined_rooms()).rooms) == rooms_before
    assert await _invited_rooms(bob) == set()

    # Anything but "block" lets invites in again; the hidden one comes back.
    await _set_config(hs, bob_body, {"default_action": "allow"})
    assert await _invited_rooms(bob) == {before.room_id}
    assert isinstance(await alice.room_invite(room.room_id, bob.user_id), nio.RoomInviteResponse)
    assert await _invited_rooms(bob) == {before.room_id, room.room_id}
    assert await _sliding_invites(hs, bob_body["access_token"]) == {before.room_id, room.room_id}


async def test_unstable_type_and_odd_contents(hs, clients):
    alice, bob = clients["alice"], clients["bob"]
    bob_body = clients["bob_body"]
    room = await alice.room_create(name="Room")
    # The MSC's unstable account data type blocks too.
    await _set_config(
        hs, bob_body, {"default_action": "block"}, "org.matrix.msc4380.invite_permission_config"
    )
    refused = await alice.room_invite(room.room_id, bob.user_id)
    assert isinstance(refused, nio.RoomInviteError)
    assert refused.status_code == "M_INVITE_BLOCKED"
    # The stable type wins; an unknown or invalid action means invites as usual.
    for content in ({"default_action": "ignore"}, {"default_action": ["block"]}, {}):
        await _set_config(hs, bob_body, content)
        assert isinstance(
            await alice.room_invite(room.room_id, bob.user_id), nio.RoomInviteResponse
        ), content
        assert (await bob.room_leave(room.room_id)).transport_response.status == 200


async def test_blocking_user_may_still_invite_and_join(hs, clients):
    alice, bob = clients["alice"], clients["bob"]
    await _set_config(hs, clients["bob_body"], {"default_action": "block"})
    room = await bob.room_create(name="Bob's", invite=[alice.user_id])
    assert isinstance(room, nio.RoomCreateResponse)
    assert isinstance(await alice.join(room.room_id), nio.JoinResponse)


async def test_advertised(hs):
    status, body = await hs.request("GET", "/_matrix/client/versions")
    features = body["unstable_features"]
    assert features["org.matrix.msc4380"] is True
    assert features["org.matrix.msc4380.stable"] is True


async def test_blocking_survives_a_restart(server_factory):
    hs = await server_factory()
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    await _set_config(hs, bob, {"default_action": "block"})
    await hs.http.close()
    await hs.server.stop()

    hs = await server_factory()
    status, body = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=alice["access_token"],
        json={"invite": [bob["user_id"]]},
    )
    assert (status, body["errcode"]) == (403, "M_INVITE_BLOCKED")
