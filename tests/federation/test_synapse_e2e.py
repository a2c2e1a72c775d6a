"""End-to-end encryption across federation with a real Synapse: a matrix-nio
client (vodozemac) on our server and one on Synapse exchange encrypted
messages in an encrypted room of ours that the Synapse user joined. Each side
fetches the other's device keys and claims a one-time key over federation,
sends its room key as an Olm to-device message, and decrypts what the other
sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.conftest import RunningServer
from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import login, quote
from tests.interop.synapse import PASSWORD, SynapseServer
from tests.interop.waiting import wait_until
from tests.nio_e2e import MEGOLM, decrypted, encrypted_client, send, sync, upload_keys

MakeClient = Callable[[str, str, str, str], Awaitable[nio.AsyncClient]]


@pytest.fixture
async def e2e_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """e2e_client(base_url, user_id, device_id, token): a logged-in nio client
    with encryption on and its own crypto store, its device keys uploaded."""
    clients: list[nio.AsyncClient] = []

    async def make(base_url: str, user_id: str, device_id: str, token: str) -> nio.AsyncClient:
        client = encrypted_client(
            tmp_path / f"store-{len(clients)}", base_url, user_id, device_id, token
        )
        clients.append(client)
        await upload_keys(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def receive(client: nio.AsyncClient, room_id: str, sender: str, body: str) -> None:
    """Sync until the client has decrypted `body` from `sender` in the room."""
    seen: list[tuple[str, str]] = []

    async def arrived() -> bool:
        seen.extend(decrypted(await sync(client), room_id))
        return (sender, body) in seen

    await wait_until(arrived, f"{client.user_id} decrypts {body!r}", within=30, interval=0.5)


async def see_member(client: nio.AsyncClient, room_id: str, user_id: str, what: str) -> None:
    """Sync until the client sees `user_id` in the room."""

    async def seen() -> bool:
        await sync(client)
        room = client.rooms.get(room_id)
        return room is not None and user_id in room.users

    await wait_until(seen, what)


async def test_an_encrypted_exchange_between_our_user_and_a_synapse_user(
    synapse: SynapseServer, server_factory: Any, e2e_client: MakeClient
) -> None:
    hs: RunningServer = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    registered = await hs.register("alice")
    alice = await e2e_client(
        hs.url, registered["user_id"], registered["device_id"], registered["access_token"]
    )
    syn_user = await synapse.register()
    bob = await e2e_client(
        synapse.client_url, syn_user.user_id, syn_user.device_id, syn_user.access_token
    )

    created = await alice.room_create(
        preset=nio.RoomPreset.public_chat,
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        ],
    )
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    assert await syn_user.join(room_id, via=[our_name]) == room_id

    await see_member(alice, room_id, bob.user_id, "alice sees bob in the room")
    await sync(bob)
    assert alice.rooms[room_id].encrypted and bob.rooms[room_id].encrypted

    # Alice's client fetched bob's device keys through our server from Synapse.
    assert bob.device_id in alice.device_store[bob.user_id]
    await send(alice, room_id, "hello bob, across servers")
    raw = await hs.pool.fetch("SELECT json FROM events WHERE room_id = $1", room_id)
    assert not any("across servers" in r["json"] for r in raw)
    await receive(bob, room_id, alice.user_id, "hello bob, across servers")

    # Bob's client fetched alice's keys through Synapse from our server.
    assert alice.device_id in bob.device_store[alice.user_id]
    await send(bob, room_id, "hi alice, a secret reply")
    await receive(alice, room_id, bob.user_id, "hi alice, a secret reply")


async def test_our_user_in_a_synapse_encrypted_room_follows_a_new_device_of_its_user(
    synapse: SynapseServer, server_factory: Any, e2e_client: MakeClient
) -> None:
    hs: RunningServer = await start_federating_server(server_factory)
    registered = await hs.register("alice")
    alice = await e2e_client(
        hs.url, registered["user_id"], registered["device_id"], registered["access_token"]
    )
    syn_user = await synapse.register()
    bob = await e2e_client(
        synapse.client_url, syn_user.user_id, syn_user.device_id, syn_user.access_token
    )
    room_id = await syn_user.create_room(
        preset="public_chat",
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        ],
    )
    status, joined = await hs.request(
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id)}?server_name={quote(synapse.server_name)}",
        token=registered["access_token"],
        json={},
    )
    assert status == 200, joined

    await see_member(bob, room_id, alice.user_id, "bob sees alice in the room")
    await sync(alice)
    assert alice.rooms[room_id].encrypted

    await send(bob, room_id, "welcome to my encrypted room")
    await receive(alice, room_id, bob.user_id, "welcome to my encrypted room")
    await send(alice, room_id, "thanks, bob")
    await receive(bob, room_id, alice.user_id, "thanks, bob")

    # Bob logs in a second device on Synapse: Synapse sends our server an
    # m.device_list_update, alice's client hears that bob changed and finds
    # the new device in the keys our server answers with.
    localpart = syn_user.user_id[1:].partition(":")[0]
    second = await login(synapse.http, synapse.client_url, localpart, PASSWORD)
    phone = await e2e_client(
        synapse.client_url, second.user_id, second.device_id, second.access_token
    )

    async def alice_knows_the_phone() -> bool:
        await sync(alice)
        return phone.device_id in alice.device_store[bob.user_id]

    await wait_until(alice_knows_the_phone, "alice's client learns bob's new device", within=30)
    cached = await hs.pool.fetch(
        "SELECT device_id FROM e2e_remote_devices WHERE user_id = $1", bob.user_id
    )
    assert {r["device_id"] for r in cached} == {bob.device_id, phone.device_id}
    await send(alice, room_id, "to both of your devices")
    await receive(phone, room_id, alice.user_id, "to both of your devices")
