"""X-Matrix request authentication, inbound and outbound."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from signedjson.key import generate_signing_key

from federation.auth import XMatrix, format_x_matrix, parse_x_matrix, sign_request
from federation.transport import FederationError
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote

PROFILE = "/_matrix/federation/v1/query/profile?user_id=%40alice%3Alocalhost"


@pytest.mark.parametrize(
    "header",
    [
        'X-Matrix origin="a.example:8448",destination="b.example",key="ed25519:k1",sig="c2ln"',
        "X-Matrix origin=a.example:8448,destination=b.example,key=ed25519:k1,sig=c2ln",
        'x-matrix  sig="c2ln" , key="ed25519:k1", destination=b.example ,origin="a.example:8448"',
        'X-MATRIX Origin="a.example:8448",DESTINATION="b.example",Key="ed25519:k1",Sig="c2ln"',
    ],
)
def test_header_grammar(header: str) -> None:
    assert parse_x_matrix(header) == XMatrix("a.example:8448", "ed25519:k1", "c2ln", "b.example")


def test_quoted_values_unescape_and_destination_is_optional() -> None:
    parsed = parse_x_matrix(r'X-Matrix origin="a.example",key="ed25519:k\"1",sig="s\\g"')
    assert parsed == XMatrix("a.example", 'ed25519:k"1', "s\\g", None)
    assert parse_x_matrix(format_x_matrix(parsed)) == parsed


@pytest.mark.parametrize(
    "header",
    [
        'Bearer origin="a.example",key="ed25519:k",sig="s"',
        'X-Matrix origin="a.example",key="ed25519:k"',
        'X-Matrix origin="a.example",key="ed25519:k",sig="s',
        'X-Matrix origin="not a server",key="ed25519:k",sig="s"',
        'X-Matrix origin="a.example",origin="b.example",key="ed25519:k",sig="s"',
        "X-Matrix origin",
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(ValueError):
        parse_x_matrix(header)


async def register_alice(hs: RunningServer) -> None:
    body = await hs.register("alice")
    status, _ = await hs.request(
        "PUT",
        "/_matrix/client/v3/profile/@alice:localhost/displayname",
        token=body["access_token"],
        json={"displayname": "Alice"},
    )
    assert status == 200


async def test_a_validly_signed_request_is_accepted(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    await register_alice(fed_hs)
    status, body = await remote.request(fed_hs, "GET", PROFILE)
    assert status == 200, body
    assert body == {"displayname": "Alice"}


async def test_unauthenticated_requests_get_401(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    await register_alice(fed_hs)
    good = remote.authorization("GET", "localhost", PROFILE)
    parsed = parse_x_matrix(good)
    impostor = generate_signing_key(remote.signing_key.version)
    cases: dict[str, str | None] = {
        "missing header": None,
        "bearer token": "Bearer abcdef",
        "bad signature": sign_request(
            method="GET",
            uri=PROFILE,
            origin=remote.server_name,
            destination="localhost",
            content=None,
            signing_key=impostor,
        ),
        "wrong destination": remote.authorization("GET", "other.example", PROFILE),
        "unknown key": format_x_matrix(
            XMatrix(parsed.origin, "ed25519:unknown", parsed.signature, "localhost")
        ),
        "signed for another path": remote.authorization(
            "GET", "localhost", PROFILE + "&field=displayname"
        ),
        "signed for another method": remote.authorization("POST", "localhost", PROFILE),
        "unreachable origin": format_x_matrix(
            XMatrix("127.0.0.1:1", parsed.key_id, parsed.signature, "localhost")
        ),
    }
    for name, header in cases.items():
        status, body = await remote.request(fed_hs, "GET", PROFILE, authorization=header)
        assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED"), name


async def test_the_signature_covers_the_body(fed_hs: RunningServer, remote: ScriptedRemote) -> None:
    path = "/_matrix/federation/v1/publicRooms"
    signed_for = remote.authorization("POST", "localhost", path, {"limit": 5})
    status, body = await remote.request(
        fed_hs, "POST", path, json_body={"limit": 6}, authorization=signed_for
    )
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    status, body = await remote.request(
        fed_hs, "POST", path, json_body={"limit": 5}, authorization=signed_for
    )
    assert status == 200, body


async def test_version_and_keys_need_no_authentication(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    status, body = await remote.request(
        fed_hs, "GET", "/_matrix/federation/v1/version", authorization=None
    )
    assert status == 200 and body["server"]["name"]


async def test_our_requests_carry_a_signature_the_remote_verifies(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)

    async def answer(request: web.Request, origin: str, body: Any) -> Any:
        return {"seen": body, "query": dict(request.query)}

    remote.app.router.add_get("/_matrix/federation/v1/query/profile", remote.handler(answer))
    remote.app.router.add_put("/_matrix/federation/v1/send/{txn}", remote.handler(answer))
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    client = fed_hs.server.federation_client
    got = await client.get_json(
        remote.server_name,
        "/_matrix/federation/v1/query/profile",
        query={"user_id": "@bob:remote", "field": "displayname"},
    )
    assert got == {"seen": None, "query": {"user_id": "@bob:remote", "field": "displayname"}}
    got = await client.put_json(
        remote.server_name, "/_matrix/federation/v1/send/t%2F1", {"pdus": [], "edus": []}
    )
    assert got["seen"] == {"pdus": [], "edus": []}
    assert [(m, p, o) for m, p, o, _ in remote.received] == [
        ("GET", "/_matrix/federation/v1/query/profile", "localhost"),
        ("PUT", "/_matrix/federation/v1/send/t/1", "localhost"),
    ]
    # An error answer becomes a FederationError with the status and errcode.
    with pytest.raises(FederationError) as caught:
        await client.get_json(remote.server_name, "/_matrix/federation/v1/nothing")
    assert caught.value.status == 404
