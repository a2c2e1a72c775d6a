"""The federation sender of a process in cluster mode hears typing from the
shared stream (cluster/ephemeral_follower.py): each change once, and a
typist's renewals, written at most every RENEW_SHARE_S, renew the remote's
timer. (Across worker processes: tests/cluster/test_ephemeral_edus.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.cluster import typing as shared_typing
from tests.federation.test_sender import (
    SENDER_CONFIG,
    create_room,
    join_remote_user,
    register,
    remote_with_inbox,
    wait_until,
)

RENEW_S = 0.5


async def test_typing_changes_and_spaced_renewals_reach_the_remote_once(
    server_factory: Any, remote_factory: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(shared_typing, "RENEW_SHARE_S", RENEW_S)
    hs = await server_factory(cluster={"enabled": True, "instance_name": "one"}, **SENDER_CONFIG)
    remote, inbox = await remote_with_inbox(remote_factory)
    await remote.expect_keys_of(hs)
    alice = await register(hs, "alice")
    room_id = await create_room(hs, alice)
    await join_remote_user(hs, remote, room_id, f"@bob:{remote.server_name}")

    def sent() -> list[bool]:
        return [e["typing"] for e in inbox.edus("m.typing") if e["room_id"] == room_id]

    async def typing(on: bool) -> None:
        status, body = await hs.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{room_id}/typing/{alice.user_id}",
            token=alice.token,
            json={"typing": on, "timeout": 30000},
        )
        assert status == 200, body

    await typing(True)
    await wait_until(lambda: sent() == [True])
    # A renewal at once is not shared; one past RENEW_S is, and renews the
    # remote's timer.
    await typing(True)
    await asyncio.sleep(RENEW_S)
    await typing(True)
    await wait_until(lambda: len(sent()) >= 2)
    await typing(False)
    await wait_until(lambda: sent()[-1:] == [False])
    assert sent() == [True, True, False]
