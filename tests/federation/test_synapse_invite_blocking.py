"""Invite blocking (MSC4380) over federation with a real Synapse: an invite
from a Synapse user to one of ours who blocks invites is refused by our
/invite endpoint with 403 M_INVITE_BLOCKED, so it never reaches our user nor
the room; once blocking stops, the same invite goes through."""

from __future__ import annotations

from typing import Any

from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixError, quote, register
from tests.interop.synapse import SynapseServer

CONFIG = "m.invite_permission_config"


async def test_a_synapse_invite_to_a_blocking_user_is_refused(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    bob = await register(hs.http, hs.url, synapse.unique_localpart("bob"), "secret")
    config_path = f"/_matrix/client/v3/user/{quote(bob.user_id)}/account_data/{CONFIG}"
    await bob.ok("PUT", config_path, {"default_action": "block"})
    room_id = await syd.create_room(preset="private_chat", name="Unwanted")

    try:
        await syd.invite(room_id, bob.user_id)
        raise AssertionError("Synapse's invite of a blocking user succeeded")
    except MatrixError as e:
        refused = e
    # Synapse hands our refusal to its user as it got it.
    assert refused.status == 403, refused.body
    assert refused.body["errcode"] == "M_INVITE_BLOCKED", refused.body

    # Nothing reached Bob, and the room has no invite for him.
    assert room_id not in (await bob.sync()).get("rooms", {}).get("invite", {})
    status, _ = await syd.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.member/{quote(bob.user_id)}",
    )
    assert status == 404

    # Without blocking, the same invite arrives.
    await bob.ok("PUT", config_path, {})
    await syd.invite(room_id, bob.user_id)
    invite = await bob.sync_until_invite(room_id)
    senders = {
        e["sender"] for e in invite["invite_state"]["events"] if e["type"] == "m.room.member"
    }
    assert senders == {syd.user_id}
