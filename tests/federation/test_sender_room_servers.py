"""The federation sender follows a room's servers from the events it reads
(federation/room_servers.py) instead of reading all members per batch: a
remote that joins between two local events gets the next one, local joins
keep the remote a destination, and a remote kicked gets no more."""

from __future__ import annotations

from typing import Any

from tests.federation.test_sender import (
    SENDER_CONFIG,
    create_room,
    event_ids,
    join_remote_user,
    register,
    remote_with_inbox,
    room_version,
    send_message,
    wait_until,
)

V3 = "/_matrix/client/v3"


async def test_servers_followed_through_joins_and_a_kick(
    server_factory: Any, remote_factory: Any
) -> None:
    hs = await server_factory(**SENDER_CONFIG)
    remote, inbox = await remote_with_inbox(remote_factory)
    await remote.expect_keys_of(hs)
    alice = await register(hs, "alice")
    room_id = await create_room(hs, alice)
    version = await room_version(hs, room_id)
    # The sender reads (and keeps) the room's servers before the remote is in.
    await send_message(hs, alice, room_id, "before")

    bob = f"@bob:{remote.server_name}"
    await join_remote_user(hs, remote, room_id, bob)
    first = await send_message(hs, alice, room_id, "after bob")
    await wait_until(lambda: len(inbox.pdus()) >= 1)
    assert event_ids(inbox.pdus(), version) == [first]

    # Local joins: the remote still gets every event, joins included.
    expected = [first]
    for i in range(3):
        local = await register(hs, f"local{i}")
        status, body = await hs.request("POST", f"{V3}/rooms/{room_id}/join", token=local.token)
        assert status == 200, body
        expected.append(await _member_event(hs, room_id, local.user_id))
        expected.append(await send_message(hs, local, room_id, f"from local{i}"))
    await wait_until(lambda: len(inbox.pdus()) >= len(expected))
    assert event_ids(inbox.pdus(), version) == expected

    status, body = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/kick", token=alice.token, json={"user_id": bob}
    )
    assert status == 200, body
    kick = await _member_event(hs, room_id, bob)
    after_kick = await send_message(hs, alice, room_id, "bob is gone")
    # A marker the remote gets, in another room bob is still in, so that the
    # message in the first room has had its chance to arrive.
    other = await create_room(hs, alice)
    await join_remote_user(hs, remote, other, bob)
    marker = await send_message(hs, alice, other, "marker")
    await wait_until(lambda: marker in event_ids(inbox.pdus(), version))
    received = event_ids(inbox.pdus(), version)
    assert kick in received
    assert after_kick not in received


async def _member_event(hs: Any, room_id: str, user_id: str) -> str:
    return await hs.pool.fetchval(
        """SELECT event_id FROM current_state
           WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2""",
        room_id,
        user_id,
    )
