"""A delayed message sent here, in a room shared with a real Synapse user,
arrives at Synapse after its delay, once."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.federation.test_synapse_federation import create_public_room, register_ours
from tests.interop.fixtures import start_federating_server
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until


async def test_delayed_message_reaches_synapse_once(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    token = await register_ours(hs, "alice")
    room_id = await create_public_room(hs, token, "Later")
    syn_user = await synapse.register()
    assert await syn_user.join(room_id, via=[hs.server.config.server_name]) == room_id

    status, body = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/d1"
        "?org.matrix.msc4140.delay=400",
        token=token,
        json={"msgtype": "m.text", "body": "sent later"},
    )
    assert status == 200 and set(body) == {"delay_id"}, body
    seen = await syn_user.sync_until_event(
        room_id, lambda e: e.get("content", {}).get("body") == "sent later", what="the message"
    )
    # A marker sent after it: once it is there, everything before it is too.
    status, marker = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/m1",
        token=token,
        json={"msgtype": "m.text", "body": "marker"},
    )
    assert status == 200, marker
    await syn_user.sync_until_event(
        room_id, lambda e: e["event_id"] == marker["event_id"], what="the marker"
    )

    async def history() -> list[dict[str, Any]] | None:
        chunk = (
            await syn_user.ok(
                "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=50"
            )
        )["chunk"]
        return chunk if any(e["event_id"] == marker["event_id"] for e in chunk) else None

    chunk = await wait_until(history, "Synapse's history up to the marker")
    later = [e for e in chunk if e.get("content", {}).get("body") == "sent later"]
    assert [e["event_id"] for e in later] == [seen["event_id"]]
    assert seen["sender"] == f"@alice:{hs.server.config.server_name}"
    # Synapse's user is not the sender: no delay id for them.
    assert "org.matrix.msc4140.delay_id" not in seen.get("unsigned", {})
