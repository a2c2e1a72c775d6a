"""The Synapse harness itself: Synapse starts, serves clients and TLS federation,
signs its keys, reports its log when it cannot start, and the client helpers work."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from signedjson.key import decode_verify_key_bytes, get_verify_key
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64, encode_base64

from homeserver.keyfiles import load_signing_key
from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixError, login, quote
from tests.interop.synapse import PASSWORD, SynapseServer, ensure_synapse_venv
from tests.interop.waiting import wait_until


async def test_user_registers_and_logs_in(synapse: SynapseServer) -> None:
    alice = await synapse.register()
    assert alice.user_id.endswith(":" + synapse.server_name)
    whoami = await alice.ok("GET", "/_matrix/client/v3/account/whoami")
    assert whoami["user_id"] == alice.user_id
    again = await login(synapse.http, synapse.client_url, alice.user_id, PASSWORD)
    assert again.user_id == alice.user_id
    assert again.device_id != alice.device_id


async def test_admin_registered_with_the_shared_secret(synapse: SynapseServer) -> None:
    admin = await synapse.register_admin()
    user = await synapse.register()
    path = f"/_synapse/admin/v2/users/{quote(user.user_id)}"
    assert (await admin.ok("GET", path))["admin"] is False
    status, body = await user.request("GET", path)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_federation_version_over_tls_with_our_certificate(synapse: SynapseServer) -> None:
    async with synapse.http.get(synapse.federation_url + "/_matrix/federation/v1/version") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["server"]["name"] == "Synapse"
    served = ssl.get_server_certificate(("127.0.0.1", synapse.federation_port))
    expected = (synapse.directory / "tls.crt").read_text()
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(expected)


async def test_server_keys_are_self_signed_with_the_signing_key(synapse: SynapseServer) -> None:
    async with synapse.http.get(synapse.federation_url + "/_matrix/key/v2/server") as resp:
        assert resp.status == 200
        keys = await resp.json()
    assert keys["server_name"] == synapse.server_name
    ours = load_signing_key(synapse.directory / "signing.key")
    key_id = f"ed25519:{ours.version}"
    served = keys["verify_keys"][key_id]["key"]
    verify_key = decode_verify_key_bytes(key_id, decode_base64(served))
    assert verify_key.encode() == get_verify_key(ours).encode()
    verify_signed_json(keys, synapse.server_name, verify_key)


async def test_client_helpers_room_round_trip(synapse: SynapseServer) -> None:
    alice = await synapse.register()
    bob = await synapse.register()
    room_id = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    await bob.sync_until_invite(room_id)
    assert await bob.join(room_id) == room_id
    event_id = await bob.send_text(room_id, "hello from bob")
    seen = await alice.sync_until_event(
        room_id, lambda e: e.get("event_id") == event_id, what="bob's message"
    )
    assert seen["sender"] == bob.user_id
    assert seen["content"] == {"msgtype": "m.text", "body": "hello from bob"}
    with pytest.raises(MatrixError) as error:
        await bob.join("!nosuchroom:" + synapse.server_name)
    assert error.value.status in (403, 404)


async def test_synapse_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    broken = SynapseServer(
        ensure_synapse_venv(),
        tmp_path,
        {"name": "sqlite3", "args": {"database": str(tmp_path / "unused.db")}},
        extra_config={"default_room_version": "no-such-version"},
    )
    with pytest.raises(RuntimeError, match="no-such-version"):
        await broken.start()


async def test_wait_until_returns_the_value_or_fails_naming_what() -> None:
    calls = []

    async def third_time() -> str | None:
        calls.append(1)
        return "done" if len(calls) == 3 else None

    assert await wait_until(third_time, "the third call", interval=0.01) == "done"
    with pytest.raises(AssertionError, match="the impossible; last: 0"):
        await wait_until(lambda: 0, "the impossible", within=0.05, interval=0.01)


async def test_synapse_fetches_our_keys_through_its_notary(
    synapse: SynapseServer, server_factory: Any
) -> None:
    ours = await start_federating_server(server_factory)
    name = ours.server.config.server_name
    signing_key = load_signing_key(ours.server.config.path(ours.server.config.signing_key_path))
    key_id = f"ed25519:{signing_key.version}"
    # Synapse only fetches on a cache miss for a named key; a query for "all
    # keys" of a server it never saw answers from its (empty) cache.
    query = {"server_keys": {name: {key_id: {"minimum_valid_until_ts": int(time.time() * 1000)}}}}
    async with synapse.http.post(
        synapse.federation_url + "/_matrix/key/v2/query", json=query
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    (keys,) = body["server_keys"]
    assert keys["server_name"] == name
    our_verify_key = get_verify_key(signing_key)
    assert keys["verify_keys"][key_id]["key"] == encode_base64(our_verify_key.encode())
    verify_signed_json(keys, name, our_verify_key)
    # The notary countersigns what it fetched.
    synapse_key = get_verify_key(load_signing_key(synapse.directory / "signing.key"))
    verify_signed_json(keys, synapse.server_name, synapse_key)


async def test_our_notary_fetches_synapse_keys(synapse: SynapseServer, server_factory: Any) -> None:
    ours = await start_federating_server(server_factory)
    synapse_signing_key = load_signing_key(synapse.directory / "signing.key")
    key_id = f"ed25519:{synapse_signing_key.version}"
    now = int(time.time() * 1000)
    query = {"server_keys": {synapse.server_name: {key_id: {"minimum_valid_until_ts": now}}}}
    url = f"https://127.0.0.1:{ours.server.federation_port}/_matrix/key/v2/query"
    async with synapse.http.post(url, json=query) as resp:
        assert resp.status == 200
        body = await resp.json()
    (keys,) = body["server_keys"]
    assert keys["server_name"] == synapse.server_name
    verify_signed_json(keys, synapse.server_name, get_verify_key(synapse_signing_key))
    our_key = load_signing_key(ours.server.config.path(ours.server.config.signing_key_path))
    verify_signed_json(keys, ours.server.config.server_name, get_verify_key(our_key))
