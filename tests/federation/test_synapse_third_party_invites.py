"""Third-party (email) invites across servers with a real Synapse, both ways,
through the test identity server (tests/fake_identity_server.py).

- A Synapse user invites an address in a room that includes us; the identity
  server binds it to one of our users and calls /3pid/onbind here; we hand the
  invite to Synapse (exchange_third_party_invite), which sends it, and our
  user ends up invited.
- One of our users invites an address in a room that includes Synapse; the
  identity server binds it to a Synapse user and calls Synapse's onbind;
  Synapse, in the room, sends the invite in our user's name, which we accept.
- Both again in rooms without the invitee's server: the invitee's server
  hands the invite to the inviter's (exchange_third_party_invite), which
  sends a plain federated invite.

This Synapse is the test's own: it must trust the identity server's test CA
(SSL_CERT_FILE, which OpenSSL reads) to store the invite and check its key.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.fake_identity_server import ACCESS_TOKEN, CaFiles, FakeIdentityServer
from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixClient, quote, register
from tests.interop.synapse import (
    SynapseServer,
    create_synapse_database,
    drop_synapse_database,
    ensure_synapse_venv,
    postgres_database_config,
)
from tests.interop.waiting import wait_until

CLIENT = "/_matrix/client/v3"


async def membership(client: MatrixClient, room_id: str, user_id: str) -> str | None:
    status, body = await client.request(
        "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
    )
    return body.get("membership") if status == 200 else None


async def invite_address(
    client: MatrixClient, room_id: str, idserver: FakeIdentityServer, address: str
) -> None:
    await client.ok(
        "POST",
        f"{CLIENT}/rooms/{quote(room_id)}/invite",
        {
            "id_server": idserver.name,
            "id_access_token": ACCESS_TOKEN,
            "medium": "email",
            "address": address,
        },
    )


async def tpi_tokens(client: MatrixClient, room_id: str) -> list[str]:
    state = await client.ok("GET", f"{CLIENT}/rooms/{quote(room_id)}/state")
    return [e["state_key"] for e in state if e["type"] == "m.room.third_party_invite"]


@pytest.fixture
async def trusting_synapse(
    postgres: Any, tmp_path: Any, ca: CaFiles, monkeypatch: pytest.MonkeyPatch
) -> Any:
    python = ensure_synapse_venv()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    name = f"synapse_tpi_{os.getpid()}"
    await create_synapse_database(postgres.admin_dsn, name)
    try:
        async with SynapseServer(
            python, tmp_path / "synapse", postgres_database_config(postgres.admin_dsn, name)
        ) as server:
            yield server
    finally:
        await drop_synapse_database(postgres.admin_dsn, name)


async def test_email_invites_across_servers_both_ways(
    trusting_synapse: SynapseServer, server_factory: Any, idserver: FakeIdentityServer, ca: CaFiles
) -> None:
    synapse = trusting_synapse
    hs = await start_federating_server(server_factory, outbound_tls_ca_file=str(ca.ca_file))

    async def ours(prefix: str) -> MatrixClient:
        return await register(hs.http, hs.url, synapse.unique_localpart(prefix), "secret")

    # Synapse's user invites an address in a room that includes us.
    syd = await synapse.register()
    bob = await ours("bob")
    room_id = await syd.create_room(preset="public_chat")
    assert await bob.join(room_id, via=[synapse.server_name]) == room_id
    await invite_address(syd, room_id, idserver, "carol@example.org")
    [token] = await wait_until(
        lambda: tpi_tokens(bob, room_id), "the third-party invite to reach us"
    )
    carol = await ours("carol")
    idserver.bindings[("email", "carol@example.org")] = carol.user_id
    body = idserver.onbind_body("email", "carol@example.org", carol.user_id, idserver.key)
    assert [i["token"] for i in body["invites"]] == [token]
    async with hs.http.post(f"{hs.url}/_matrix/federation/v1/3pid/onbind", json=body) as resp:
        assert resp.status == 200, await resp.text()
    invite = await carol.sync_until_invite(room_id)
    member = next(
        e
        for e in invite["invite_state"]["events"]
        if e["type"] == "m.room.member" and e["state_key"] == carol.user_id
    )
    assert member["sender"] == syd.user_id
    assert (
        await wait_until(
            lambda: membership(syd, room_id, carol.user_id), "Synapse to see carol invited"
        )
        == "invite"
    )
    assert await carol.join(room_id) == room_id

    # Our user invites an address in a room that includes Synapse.
    alice = await ours("alice")
    room2 = await alice.create_room(preset="public_chat")
    sue = await synapse.register()
    assert await sue.join(room2, via=[hs.server.config.server_name]) == room2
    await invite_address(alice, room2, idserver, "sam@example.org")
    [token2] = await wait_until(
        lambda: tpi_tokens(sue, room2), "the third-party invite to reach Synapse"
    )
    sam = await synapse.register()
    idserver.bindings[("email", "sam@example.org")] = sam.user_id
    body = idserver.onbind_body("email", "sam@example.org", sam.user_id, idserver.key)
    assert [i["token"] for i in body["invites"]] == [token2]
    async with synapse.http.post(
        f"{synapse.federation_url}/_matrix/federation/v1/3pid/onbind", json=body
    ) as resp:
        assert resp.status == 200, await resp.text()
    await sam.sync_until_invite(room2)
    assert (
        await wait_until(lambda: membership(alice, room2, sam.user_id), "us to see sam invited")
        == "invite"
    )
    assert await sam.join(room2) == room2

    async def sam_joined() -> bool:
        return await membership(alice, room2, sam.user_id) == "join"

    await wait_until(sam_joined, "us to see sam joined")

    # The same where the invitee's server is not in the room: it hands the
    # invite to the inviter's server, which sends a plain federated invite.
    room3 = await syd.create_room(preset="public_chat")
    await invite_address(syd, room3, idserver, "dan@example.org")
    dan = await ours("dan")
    idserver.bindings[("email", "dan@example.org")] = dan.user_id
    body = idserver.onbind_body("email", "dan@example.org", dan.user_id, idserver.key)
    async with hs.http.post(f"{hs.url}/_matrix/federation/v1/3pid/onbind", json=body) as resp:
        assert resp.status == 200, await resp.text()
    await dan.sync_until_invite(room3)
    assert await dan.join(room3, via=[synapse.server_name]) == room3

    # Room 11: Synapse forwards the invite to the servers named in the
    # inviter's and the room's ids, trying them in a set's (random) order and
    # failing for good on a room 12 id, which names no server.
    room4 = await alice.create_room(preset="public_chat", room_version="11")
    await invite_address(alice, room4, idserver, "tom@example.org")
    tom = await synapse.register()
    idserver.bindings[("email", "tom@example.org")] = tom.user_id
    body = idserver.onbind_body("email", "tom@example.org", tom.user_id, idserver.key)
    async with synapse.http.post(
        f"{synapse.federation_url}/_matrix/federation/v1/3pid/onbind", json=body
    ) as resp:
        assert resp.status == 200, await resp.text()
    await tom.sync_until_invite(room4)
    assert await membership(alice, room4, tom.user_id) == "invite"
    assert await tom.join(room4, via=[hs.server.config.server_name]) == room4
