"""Restricted joins with a real Synapse, both ways: a Synapse user in one of
our spaces joins a restricted room of that space here (we vouch for the
join), and our user in a Synapse space joins a restricted room there
(Synapse vouches)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixClient, MatrixError, quote, register
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until

AUTHORISER = "join_authorised_via_users_server"


def restricted_rule(space_id: str) -> dict[str, Any]:
    return {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": space_id}],
        },
    }


async def space_and_room(owner: MatrixClient) -> tuple[str, str]:
    """A public space and a restricted room admitting its members."""
    space = await owner.create_room(
        preset="public_chat", room_version="10", creation_content={"type": "m.space"}
    )
    room = await owner.create_room(
        preset="private_chat", room_version="10", initial_state=[restricted_rule(space)]
    )
    return space, room


async def member(client: MatrixClient, room_id: str, user_id: str) -> dict[str, Any] | None:
    status, body = await client.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}",
    )
    return body if status == 200 else None


async def joined(client: MatrixClient, room_id: str, user_id: str) -> bool:
    content = await member(client, room_id, user_id)
    return content is not None and content.get("membership") == "join"


async def test_a_synapse_member_of_our_space_joins_our_restricted_room(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    alice = await register(hs.http, hs.url, synapse.unique_localpart("alice"), "secret")
    space, room = await space_and_room(alice)
    syd = await synapse.register()
    outsider = await synapse.register()

    assert await syd.join(space, via=[our_name]) == space
    assert await syd.join(room, via=[our_name]) == room
    content = await member(alice, room, syd.user_id)
    assert content is not None
    assert content["membership"] == "join" and content[AUTHORISER] == alice.user_id
    await wait_until(lambda: joined(syd, room, syd.user_id), "Synapse to hold the join")

    with pytest.raises(MatrixError) as refused:
        await outsider.join(room, via=[our_name])
    assert refused.value.status == 403, refused.value
    assert await member(alice, room, outsider.user_id) is None


async def test_our_member_of_a_synapse_space_joins_its_restricted_room(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    space, room = await space_and_room(syd)
    bob = await register(hs.http, hs.url, synapse.unique_localpart("bob"), "secret")
    carol = await register(hs.http, hs.url, synapse.unique_localpart("carol"), "secret")

    assert await bob.join(space, via=[synapse.server_name]) == space
    await wait_until(lambda: joined(syd, space, bob.user_id), "Synapse to see bob in the space")
    assert await bob.join(room, via=[synapse.server_name]) == room
    content = await member(bob, room, bob.user_id)
    assert content is not None and content[AUTHORISER] == syd.user_id
    await wait_until(lambda: joined(syd, room, bob.user_id), "Synapse to see bob joined")

    with pytest.raises(MatrixError) as refused:
        await carol.join(room, via=[synapse.server_name])
    assert refused.value.status == 403, refused.value
    assert await member(syd, room, carol.user_id) is None
