"""Server keys: ours as published, other servers' as fetched, cached and vouched for."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from signedjson.key import (
    decode_verify_key_bytes,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import sign_json, verify_signed_json
from unpaddedbase64 import decode_base64

from federation.keys import KeyRing
from storage.server_keys import ServerKeyStore
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, key_response, now_ms

DAY_MS = 24 * 3600 * 1000


def verify_self_signed(answer: dict[str, Any], server_name: str) -> None:
    """Check `answer` is signed by every key it publishes as current."""
    for kid, entry in answer["verify_keys"].items():
        verify_signed_json(
            answer, server_name, decode_verify_key_bytes(kid, decode_base64(entry["key"]))
        )


def key_ring(hs: RunningServer) -> KeyRing:
    return hs.server.key_ring


async def trusting(server_factory: Any, notary: ScriptedRemote) -> RunningServer:
    """Our server with `notary` as its one trusted key server."""
    return await server_factory(
        federation_insecure=True,
        trusted_key_servers=[
            {
                "server_name": notary.server_name,
                "verify_keys": {notary.key_id: notary.verify_key_base64},
            }
        ],
    )


async def test_our_key_answer_is_self_signed(fed_hs: RunningServer, remote: ScriptedRemote) -> None:
    before = now_ms()
    answer = await remote.our_keys(fed_hs)
    assert answer["server_name"] == "localhost"
    verify_self_signed(answer, "localhost")
    our_key_id = key_ring(fed_hs).ours.key_id
    assert list(answer["verify_keys"]) == [our_key_id]
    assert answer["old_verify_keys"] == {}
    # Valid for about a day: long enough to cache, short enough to rotate.
    assert before + DAY_MS - 60_000 <= answer["valid_until_ts"] <= now_ms() + DAY_MS
    status, legacy = await remote.request(
        fed_hs, "GET", f"/_matrix/key/v2/server/{our_key_id}", authorization=None
    )
    assert status == 200 and legacy == answer


async def test_old_keys_are_published_with_their_expiry(
    server_factory: Any, remote: ScriptedRemote
) -> None:
    old = generate_signing_key("old1")
    old_b64 = encode_verify_key_base64(get_verify_key(old))
    hs = await server_factory(
        old_signing_keys=[{"key_id": "ed25519:old1", "key": old_b64, "expired_ts": 1234}]
    )
    answer = await remote.our_keys(hs)
    assert answer["old_verify_keys"] == {"ed25519:old1": {"key": old_b64, "expired_ts": 1234}}
    verify_self_signed(answer, "localhost")
    ours = key_ring(hs).ours
    # The old key verifies what was signed before it expired, not after.
    assert ours.verify_keys(["ed25519:old1"], 1000)
    assert not ours.verify_keys(["ed25519:old1"], 2000)


async def test_remote_keys_are_fetched_once_and_kept_in_postgres(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    ring = key_ring(fed_hs)
    keys = await ring.verify_keys(remote.server_name, [remote.key_id], now_ms())
    assert encode_verify_key_base64(keys[remote.key_id]) == remote.verify_key_base64
    assert remote.key_requests == 1
    # A second verification uses the cache.
    signed = sign_json({"hello": "world"}, remote.server_name, remote.signing_key)
    await ring.verify_json(signed, remote.server_name, now_ms())
    assert remote.key_requests == 1
    # So does a key ring that starts from PostgreSQL alone (a restart).
    fresh = KeyRing(ServerKeyStore(fed_hs.pool), fed_hs.server.federation_client, ring.ours)
    keys = await fresh.verify_keys(remote.server_name, [remote.key_id], now_ms())
    assert encode_verify_key_base64(keys[remote.key_id]) == remote.verify_key_base64
    assert remote.key_requests == 1
    row = await fed_hs.pool.fetchrow(
        "SELECT from_server, valid_until_ts FROM server_keys WHERE server_name = $1",
        remote.server_name,
    )
    assert row["from_server"] == remote.server_name
    assert now_ms() < row["valid_until_ts"] <= now_ms() + DAY_MS


async def test_a_key_past_its_valid_until_ts_is_fetched_again(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    ring = key_ring(fed_hs)
    remote.key_validity_ms = 3600 * 1000
    assert await ring.verify_keys(remote.server_name, [remote.key_id], now_ms())
    assert remote.key_requests == 1
    # An object made two hours from now is past the cached key's validity.
    remote.key_validity_ms = 3 * 3600 * 1000
    later = now_ms() + 2 * 3600 * 1000
    assert await ring.verify_keys(remote.server_name, [remote.key_id], later)
    assert remote.key_requests == 2
    assert await ring.verify_keys(remote.server_name, [remote.key_id], later)
    assert remote.key_requests == 2


async def test_concurrent_lookups_share_one_fetch(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    remote.key_delay_s = 0.3
    ring = key_ring(fed_hs)
    results = await asyncio.gather(
        *(ring.verify_keys(remote.server_name, [remote.key_id], now_ms()) for _ in range(8))
    )
    assert all(remote.key_id in r for r in results)
    assert remote.key_requests == 1


async def test_keys_without_a_valid_self_signature_are_refused(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    impostor = generate_signing_key(remote.signing_key.version)
    # Publishes the real key but is signed by another one under the same id.
    forged = key_response(remote.server_name, remote.signing_key, now_ms() + DAY_MS)
    forged["signatures"] = sign_json(
        {k: v for k, v in forged.items() if k != "signatures"}, remote.server_name, impostor
    )["signatures"]
    remote.key_answer = lambda: forged
    ring = key_ring(fed_hs)
    assert await ring.verify_keys(remote.server_name, [remote.key_id], now_ms()) == {}
    # An answer about another server is refused too.
    remote.key_answer = lambda: key_response("evil.example", remote.signing_key, now_ms() + DAY_MS)
    assert (
        await KeyRing(
            ServerKeyStore(fed_hs.pool), fed_hs.server.federation_client, ring.ours
        ).verify_keys(remote.server_name, [remote.key_id], now_ms())
        == {}
    )
    assert await fed_hs.pool.fetchval("SELECT count(*) FROM server_keys") == 0


async def test_keys_come_from_a_notary_when_the_server_cannot_answer(
    server_factory: Any, remote_factory: Any
) -> None:
    notary: ScriptedRemote = await remote_factory(start=False)
    # The server whose keys we want is down: its port is bound but never served.
    absent: ScriptedRemote = await remote_factory(start=False)
    vouched = key_response(absent.server_name, absent.signing_key, now_ms() + DAY_MS)
    queries: list[Any] = []

    async def query(request: Any) -> Any:
        queries.append(await request.json())
        return web.json_response(
            {"server_keys": [sign_json(vouched, notary.server_name, notary.signing_key)]}
        )

    notary.app.router.add_post("/_matrix/key/v2/query", query)
    await notary.start()
    hs = await trusting(server_factory, notary)
    keys = await key_ring(hs).verify_keys(absent.server_name, [absent.key_id], now_ms())
    assert encode_verify_key_base64(keys[absent.key_id]) == absent.verify_key_base64
    assert queries == [{"server_keys": {absent.server_name: {}}}]
    assert (
        await hs.pool.fetchval(
            "SELECT from_server FROM server_keys WHERE server_name = $1", absent.server_name
        )
        == notary.server_name
    )


async def test_a_notary_answer_not_signed_by_the_notary_is_refused(
    server_factory: Any, remote_factory: Any
) -> None:
    notary: ScriptedRemote = await remote_factory(start=False)
    absent: ScriptedRemote = await remote_factory(start=False)
    vouched = key_response(absent.server_name, absent.signing_key, now_ms() + DAY_MS)

    async def query(_: Any) -> Any:
        # Signed by the server itself only, not by the notary.
        return web.json_response({"server_keys": [vouched]})

    notary.app.router.add_post("/_matrix/key/v2/query", query)
    await notary.start()
    hs = await trusting(server_factory, notary)
    assert await key_ring(hs).verify_keys(absent.server_name, [absent.key_id], now_ms()) == {}


async def test_our_notary_serves_remote_keys_with_our_signature(
    fed_hs: RunningServer, remote: ScriptedRemote, remote_factory: Any
) -> None:
    asker: ScriptedRemote = await remote_factory()
    our_keys = await asker.our_keys(fed_hs)
    our_kid = next(iter(our_keys["verify_keys"]))
    our_key = decode_verify_key_bytes(
        our_kid, decode_base64(our_keys["verify_keys"][our_kid]["key"])
    )

    status, body = await asker.request(
        fed_hs, "GET", f"/_matrix/key/v2/query/{remote.server_name}", authorization=None
    )
    assert status == 200, body
    [answer] = body["server_keys"]
    assert answer["server_name"] == remote.server_name
    assert answer["verify_keys"][remote.key_id]["key"] == remote.verify_key_base64
    verify_self_signed(answer, remote.server_name)
    verify_signed_json(answer, "localhost", our_key)
    assert remote.key_requests == 1

    # POST with a minimum validity we already satisfy: served from the store.
    status, body = await asker.request(
        fed_hs,
        "POST",
        "/_matrix/key/v2/query",
        json_body={
            "server_keys": {
                remote.server_name: {remote.key_id: {"minimum_valid_until_ts": now_ms()}},
                "localhost": {},
            }
        },
        authorization=None,
    )
    assert status == 200, body
    by_server = {a["server_name"]: a for a in body["server_keys"]}
    assert set(by_server) == {remote.server_name, "localhost"}
    verify_signed_json(by_server[remote.server_name], "localhost", our_key)
    verify_self_signed(by_server["localhost"], "localhost")
    assert remote.key_requests == 1

    # A minimum beyond what we hold: fetched again from the server.
    status, body = await asker.request(
        fed_hs,
        "GET",
        f"/_matrix/key/v2/query/{remote.server_name}?minimum_valid_until_ts={now_ms() + 2 * DAY_MS}",
        authorization=None,
    )
    assert status == 200 and remote.key_requests == 2

    status, body = await asker.request(
        fed_hs,
        "POST",
        "/_matrix/key/v2/query",
        json_body={
            "server_keys": {remote.server_name: {remote.key_id: {"minimum_valid_until_ts": "x"}}}
        },
        authorization=None,
    )
    assert status == 400 and body["errcode"] == "M_BAD_JSON"


async def test_a_remote_old_key_verifies_only_what_it_signed_before_it_expired(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    old = generate_signing_key("old")
    expired_ts = now_ms() - 3600 * 1000
    remote.key_answer = lambda: key_response(
        remote.server_name,
        remote.signing_key,
        now_ms() + DAY_MS,
        old={
            "ed25519:old": {
                "key": encode_verify_key_base64(get_verify_key(old)),
                "expired_ts": expired_ts,
            }
        },
    )
    ring = key_ring(fed_hs)
    signed = sign_json({"made": "long ago"}, remote.server_name, old)
    await ring.verify_json(signed, remote.server_name, expired_ts - 1000)
    assert remote.key_requests == 1
    # Past its expiry the key is refused; the server is asked once whether that
    # changed, and not again at once for the same key.
    for _ in range(3):
        assert not await ring.verify_keys(remote.server_name, ["ed25519:old"], now_ms())
    assert remote.key_requests == 2
