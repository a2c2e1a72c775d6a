"""Call setup: TURN credentials, MatrixRTC foci in .well-known, third-party protocols."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import attrs
import pytest

from homeserver.config import TurnConfig
from homeserver.errors import MatrixError
from homeserver.requester import Requester
from homeserver.turn import TurnService

V3 = "/_matrix/client/v3"
TURN_URIS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]


async def test_turn_credentials_are_hmac_of_the_shared_secret(server_factory):
    hs = await server_factory(
        turn={"uris": TURN_URIS, "shared_secret": "s3cret", "user_lifetime_ms": 3_600_000}
    )
    token = (await hs.register("alice"))["access_token"]
    before = int(time.time())
    status, body = await hs.request("GET", f"{V3}/voip/turnServer", token=token)
    after = int(time.time())
    assert status == 200, body
    assert set(body) == {"username", "password", "uris", "ttl"}
    assert body["uris"] == TURN_URIS
    assert body["ttl"] == 3600
    expiry, _, user_id = body["username"].partition(":")
    assert user_id == "@alice:localhost"
    assert before + 3600 <= int(expiry) <= after + 3600
    expected = hmac.new(b"s3cret", body["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(body["password"]) == expected
    # coturn compares the standard, padded base64 text.
    assert body["password"] == base64.b64encode(expected).decode()
    wrong = hmac.new(b"other", body["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(body["password"]) != wrong


async def test_turn_without_configuration_is_empty(server_factory):
    hs = await server_factory()
    token = (await hs.register("alice"))["access_token"]
    assert await hs.request("GET", f"{V3}/voip/turnServer", token=token) == (200, {})


async def test_turn_needs_both_uris_and_secret(server_factory):
    hs = await server_factory(turn={"uris": TURN_URIS})
    token = (await hs.register("alice"))["access_token"]
    assert await hs.request("GET", f"{V3}/voip/turnServer", token=token) == (200, {})
    status, body = await hs.request("GET", f"{V3}/voip/turnServer")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_turn_secret_without_uris_is_empty(server_factory):
    hs = await server_factory(turn={"shared_secret": "s3cret"})
    token = (await hs.register("alice"))["access_token"]
    assert await hs.request("GET", f"{V3}/voip/turnServer", token=token) == (200, {})


async def test_rtc_foci_in_well_known_when_configured(server_factory):
    foci = [{"type": "livekit", "livekit_service_url": "https://livekit.example.org"}]
    hs = await server_factory(rtc_foci=foci)
    status, body = await hs.request("GET", "/.well-known/matrix/client")
    assert status == 200
    assert body["org.matrix.msc4143.rtc_foci"] == foci
    assert "base_url" in body["m.homeserver"]


async def test_no_rtc_foci_by_default(hs):
    status, body = await hs.request("GET", "/.well-known/matrix/client")
    assert status == 200
    assert "org.matrix.msc4143.rtc_foci" not in body


async def test_third_party_protocols_without_bridges(hs):
    token = (await hs.register("alice"))["access_token"]
    assert await hs.request("GET", f"{V3}/thirdparty/protocols", token=token) == (200, {})
    status, body = await hs.request("GET", f"{V3}/thirdparty/protocol/irc", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    for path in (
        "/thirdparty/location/irc?channel=%23matrix",
        "/thirdparty/user/irc?nick=alice",
        "/thirdparty/location?alias=%23irc_matrix:localhost",
        "/thirdparty/user?userid=@irc_alice:localhost",
    ):
        assert await hs.request("GET", V3 + path, token=token) == (200, []), path
    status, body = await hs.request("GET", f"{V3}/thirdparty/protocols")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


def test_guests_are_refused_turn_when_not_allowed():
    requester = Requester("@guest:localhost", "DEV", 1, is_guest=True)
    config = TurnConfig(uris=TURN_URIS, shared_secret="s3cret", allow_guests=False)
    with pytest.raises(MatrixError) as refused:
        TurnService(config).credentials(requester)
    assert (refused.value.status, refused.value.errcode) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    allowed = TurnService(attrs.evolve(config, allow_guests=True)).credentials(requester)
    assert allowed["username"].endswith(":@guest:localhost")
