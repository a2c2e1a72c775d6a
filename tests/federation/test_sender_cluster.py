"""The federation sender of a process in cluster mode hears typing and
presence from the shared streams (cluster/ephemeral_follower.py): each
change once, and a typist's renewals (written at most every RENEW_SHARE_S)
to renew the remote's timer; the appservice delivery hears every change of
a burst longer than one read.
(Across worker processes: tests/cluster/test_ephemeral_edus.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from homeserver.cluster import ephemeral_follower
from homeserver.cluster import typing as shared_typing
from tests.appservice.delivery_setup import appservice_config, registration
from tests.appservice.loopback import LoopbackAppService
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.test_sender import (
    SENDER_CONFIG,
    Inbox,
    Local,
    create_room,
    join_remote_user,
    register,
    remote_with_inbox,
    wait_until,
)

RENEW_S = 0.5


async def setup(
    server_factory: Any, remote_factory: Any
) -> tuple[RunningServer, ScriptedRemote, Inbox, Local, str]:
    """One process in cluster mode, a remote, and alice's room with the remote's bob."""
    hs = await server_factory(cluster={"enabled": True, "instance_name": "one"}, **SENDER_CONFIG)
    remote, inbox = await remote_with_inbox(remote_factory)
    await remote.expect_keys_of(hs)
    alice = await register(hs, "alice")
    room_id = await create_room(hs, alice)
    await join_remote_user(hs, remote, room_id, f"@bob:{remote.server_name}")
    return hs, remote, inbox, alice, room_id


async def test_typing_changes_and_spaced_renewals_reach_the_remote_once(
    server_factory: Any, remote_factory: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(shared_typing, "RENEW_SHARE_S", RENEW_S)
    hs, _, inbox, alice, room_id = await setup(server_factory, remote_factory)

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


async def test_a_burst_longer_than_one_read_reaches_an_appservice_whole(
    server_factory: Any, remote_factory: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    """Three presence changes stored together (one EDU of another server),
    read two at a time: the appservice, whose namespace has those users,
    hears all three."""
    monkeypatch.setattr(ephemeral_follower, "BATCH", 2)
    remote = await remote_factory()
    bridge = LoopbackAppService("hs_bridge")
    await bridge.start()
    try:
        namespace = "@.*:" + re.escape(remote.server_name)
        hs = await server_factory(
            cluster={"enabled": True, "instance_name": "one"},
            **SENDER_CONFIG,
            **appservice_config(
                tmp_path, registration("bridge", bridge.url, namespace, receive_ephemeral=True)
            ),
        )
        users = [f"@u{i}:{remote.server_name}" for i in range(3)]
        push = [{"user_id": u, "presence": "online", "status_msg": "burst"} for u in users]
        transaction = {
            "origin": remote.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [],
            "edus": [{"edu_type": "m.presence", "content": {"push": push}}],
        }
        status, body = await remote.request(
            hs, "PUT", "/_matrix/federation/v1/send/burst", json_body=transaction
        )
        assert status == 200, body

        def told() -> set[str]:
            return {
                e["sender"]
                for e in bridge.ephemeral()
                if e["type"] == "m.presence" and e["content"].get("status_msg") == "burst"
            }

        await bridge.wait_for(lambda: told() == set(users))
    finally:
        await bridge.stop()
