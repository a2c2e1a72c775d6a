"""With a real Synapse: invites and knocks of room version 12 with the stripped
state of MSC4311 (v1.16) both ways, and a redaction sent through `/send`
(MSC4169, v1.18) redacting on the other side."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixClient, quote, register
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until


async def ours(hs: Any, synapse: SynapseServer, prefix: str) -> MatrixClient:
    return await register(hs.http, hs.url, synapse.unique_localpart(prefix), "secret")


def _names(invite: dict[str, Any]) -> dict[str, Any]:
    return {(e["type"], e["state_key"]): e for e in invite["invite_state"]["events"]}


async def test_invites_to_rooms_of_version_12_both_ways(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    bob = await ours(hs, synapse, "bob")

    # Synapse's invite (its stripped form, create event included) is taken.
    theirs = await syd.create_room(preset="private_chat", name="Theirs", room_version="12")
    await syd.invite(theirs, bob.user_id)
    state = _names(await bob.sync_until_invite(theirs))
    assert state[("m.room.name", "")]["content"] == {"name": "Theirs"}
    assert ("m.room.create", "") in state
    assert await bob.join(theirs) == theirs

    # Ours goes with full PDUs, which Synapse takes and shows its user.
    alice = await ours(hs, synapse, "alice")
    mine = await alice.create_room(preset="private_chat", name="Mine", room_version="12")
    await alice.invite(mine, syd.user_id)
    state = _names(await syd.sync_until_invite(mine))
    assert state[("m.room.name", "")]["content"] == {"name": "Mine"}
    assert state[("m.room.create", "")]["content"]["room_version"] == "12"
    assert await syd.join(mine, via=[hs.server.config.server_name]) == mine


@pytest.mark.parametrize("version", ["10", "12"])
async def test_a_redaction_sent_through_send_redacts_on_synapse(
    synapse: SynapseServer, server_factory: Any, version: str
) -> None:
    hs = await start_federating_server(server_factory)
    alice = await ours(hs, synapse, "alice")
    syd = await synapse.register()
    room_id = await alice.create_room(preset="public_chat", room_version=version)
    # Synapse joins with omit_members=true: our reduced answer, then the rest.
    assert await syd.join(room_id, via=[hs.server.config.server_name]) == room_id
    target = await alice.send_text(room_id, "regrettable")
    await syd.sync_until_event(room_id, lambda e: e["event_id"] == target)

    redaction = await alice.send(room_id, {"redacts": target, "reason": "oops"}, "m.room.redaction")

    seen = await syd.sync_until_event(room_id, lambda e: e["event_id"] == redaction)
    # Where the room version keeps the target: top level before 11, content after.
    if version == "10":
        assert seen["redacts"] == target
    else:
        assert seen["content"]["redacts"] == target

    async def redacted_there() -> bool:
        status, event = await syd.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(target)}"
        )
        return status == 200 and event["content"] == {}

    await wait_until(redacted_there, "Synapse to apply the redaction")
