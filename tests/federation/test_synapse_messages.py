"""Messages between a real Synapse and us over /send, both ways, in a room of
ours that a Synapse user joined; both servers end with the same room state."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import RunningServer
from tests.federation.test_synapse_federation import create_public_room, register_ours
from tests.interop.fixtures import start_federating_server
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until


async def our_timeline(hs: RunningServer, token: str, room_id: str) -> list[dict[str, Any]]:
    status, body = await hs.request(
        "GET",
        '/_matrix/client/v3/sync?filter={"room":{"timeline":{"limit":50}}}',
        token=token,
    )
    assert status == 200, body
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return room.get("timeline", {}).get("events", [])


async def our_state_ids(hs: RunningServer, token: str, room_id: str) -> set[str]:
    status, body = await hs.request("GET", f"/_matrix/client/v3/rooms/{room_id}/state", token=token)
    assert status == 200, body
    return {e["event_id"] for e in body}


async def test_messages_flow_both_ways_and_the_room_state_agrees(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    token = await register_ours(hs, "alice")
    room_id = await create_public_room(hs, token, "Chatter")
    syn_user = await synapse.register()
    assert await syn_user.join(room_id, via=[our_name]) == room_id

    # Synapse -> us: the message reaches alice's sync with its body and sender.
    theirs = await syn_user.send_text(room_id, "hello from synapse")

    async def arrived() -> dict[str, Any] | None:
        events = await our_timeline(hs, token, room_id)
        return next((e for e in events if e["event_id"] == theirs), None)

    event = await wait_until(arrived, "Synapse's message in our sync")
    assert event["sender"] == syn_user.user_id
    assert event["content"] == {"msgtype": "m.text", "body": "hello from synapse"}

    # Us -> Synapse.
    status, sent = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/m1",
        token=token,
        json={"msgtype": "m.text", "body": "hello from our side"},
    )
    assert status == 200, sent
    seen = await syn_user.sync_until_event(
        room_id, lambda e: e["event_id"] == sent["event_id"], what="our message"
    )
    assert seen["sender"] == f"@alice:{our_name}"
    assert seen["content"]["body"] == "hello from our side"

    # A state change on Synapse's side (a new display name), then a reply.
    renamed = await syn_user.put_state(
        room_id,
        "m.room.member",
        {"membership": "join", "displayname": "Syd"},
        state_key=syn_user.user_id,
    )
    reply = await syn_user.send_text(room_id, "renamed")
    await wait_until(lambda: _has(hs, token, room_id, reply), "Synapse's reply in our sync")

    async def agreed() -> set[str] | None:
        theirs_state = await syn_user.ok("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state")
        ours = await our_state_ids(hs, token, room_id)
        return ours if ours == {e["event_id"] for e in theirs_state} else None

    state = await wait_until(agreed, "the same room state on both servers")
    status, member = await hs.request(
        "GET",
        f"/_matrix/client/v3/rooms/{room_id}/state/m.room.member/{syn_user.user_id}",
        token=token,
    )
    assert (status, member["displayname"]) == (200, "Syd")
    assert renamed in state


async def _has(hs: RunningServer, token: str, room_id: str, event_id: str) -> bool:
    return any(e["event_id"] == event_id for e in await our_timeline(hs, token, room_id))
