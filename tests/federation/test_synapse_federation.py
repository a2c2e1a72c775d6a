"""Keys, request signatures and joins against a real Synapse on loopback."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import RunningServer
from tests.federation.conftest import now_ms
from tests.interop.fixtures import start_federating_server
from tests.interop.synapse import SynapseServer


async def synapse_key_ids(synapse: SynapseServer) -> list[str]:
    async with synapse.http.get(synapse.federation_url + "/_matrix/key/v2/server") as resp:
        return list((await resp.json())["verify_keys"])


async def register_ours(hs: RunningServer, name: str) -> str:
    token = (await hs.register(name))["access_token"]
    user_id = f"@{name}:{hs.server.config.server_name}"
    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/profile/{quote(user_id)}/displayname",
        token=token,
        json={"displayname": name.title()},
    )
    assert status == 200
    return token


async def create_public_room(hs: RunningServer, token: str, name: str) -> str:
    """A public room of ours with that name; its id."""
    status, created = await hs.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        token=token,
        json={"preset": "public_chat", "name": name},
    )
    assert status == 200, created
    return created["room_id"]


async def test_synapse_and_we_check_each_others_keys_and_signatures(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name

    key_ids = await synapse_key_ids(synapse)
    keys = await hs.server.key_ring.verify_keys(synapse.server_name, key_ids, now_ms())
    assert set(keys) == set(key_ids)

    # We sign a request; Synapse fetches our keys and accepts it.
    syn_user = await synapse.register()
    await syn_user.ok(
        "PUT",
        f"/_matrix/client/v3/profile/{quote(syn_user.user_id)}/displayname",
        {"displayname": "Syd"},
    )
    answer = await hs.server.federation_client.get_json(
        synapse.server_name,
        "/_matrix/federation/v1/query/profile",
        query={"user_id": syn_user.user_id, "field": "displayname"},
    )
    assert answer == {"displayname": "Syd"}

    # Synapse signs a request; we accept it.
    await register_ours(hs, "alice")
    profile = await syn_user.ok("GET", f"/_matrix/client/v3/profile/@alice:{our_name}")
    assert profile["displayname"] == "Alice"


async def test_a_synapse_user_joins_our_room(synapse: SynapseServer, server_factory: Any) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    token = await register_ours(hs, "alice")
    room_id = await create_public_room(hs, token, "Interop")
    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/1",
        token=token,
        json={"msgtype": "m.text", "body": "hello from our side"},
    )
    assert status == 200

    syn_user = await synapse.register()
    assert await syn_user.join(room_id, via=[our_name]) == room_id

    status, members = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room_id}/joined_members", token=token
    )
    assert status == 200
    assert set(members["joined"]) == {f"@alice:{our_name}", syn_user.user_id}
    # Synapse took the state we sent: it knows the room's name and members.
    name = await syn_user.ok("GET", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.name/")
    assert name == {"name": "Interop"}
    joined = await syn_user.ok("GET", f"/_matrix/client/v3/rooms/{room_id}/joined_members")
    assert set(joined["joined"]) == {f"@alice:{our_name}", syn_user.user_id}
