"""Binding email addresses on an identity server through the homeserver,
and unbinding them: /account/3pid/unbind, /delete and deactivation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fake_identity_server import ACCESS_TOKEN, CaFiles, FakeIdentityServer

V3 = "/_matrix/client/v3"
UNSTABLE = "/_matrix/client/unstable"
EMAIL = "bob@example.org"


@pytest.fixture
async def hs(server_factory: Any, ca: CaFiles) -> Any:
    return await server_factory(outbound_tls_ca_file=str(ca.ca_file))


async def bind(hs: Any, idserver: FakeIdentityServer, user: dict, address: str = EMAIL) -> None:
    sid = f"sid-{address}"
    idserver.validate(sid, "email", address)
    status, body = await hs.request(
        "POST",
        f"{UNSTABLE}/account/3pid/bind",
        token=user["access_token"],
        json={
            "id_server": idserver.name,
            "id_access_token": ACCESS_TOKEN,
            "sid": sid,
            "client_secret": "secret",
        },
    )
    assert (status, body) == (200, {})
    assert idserver.bindings[("email", address)] == user["user_id"]


async def test_bind_then_unbind_without_naming_the_identity_server(hs, idserver):
    bob = await hs.register("bob")
    await bind(hs, idserver, bob)
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/unbind",
        token=bob["access_token"],
        json={"medium": "email", "address": EMAIL},
    )
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert idserver.bindings == {}
    # The unbind request is signed by the homeserver, like federation requests.
    [(_, unbind, headers)] = [r for r in idserver.received if r[0].endswith("/unbind")]
    assert unbind == {"mxid": bob["user_id"], "threepid": {"medium": "email", "address": EMAIL}}
    assert headers["Authorization"].startswith('X-Matrix origin="localhost",')

    # Nothing is remembered any more: nobody to ask.
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/unbind",
        token=bob["access_token"],
        json={"medium": "email", "address": EMAIL},
    )
    assert (status, body) == (200, {"id_server_unbind_result": "no-support"})


async def test_delete_unbinds_an_address_bound_out_of_band(hs, idserver):
    bob = await hs.register("bob")
    idserver.bindings[("email", EMAIL)] = bob["user_id"]
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/delete",
        token=bob["access_token"],
        json={"medium": "email", "address": EMAIL, "id_server": idserver.name},
    )
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert idserver.bindings == {}


async def test_unbind_of_someone_elses_binding_is_no_support(hs, idserver):
    bob = await hs.register("bob")
    idserver.bindings[("email", EMAIL)] = "@carol:localhost"
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/unbind",
        token=bob["access_token"],
        json={"medium": "email", "address": EMAIL, "id_server": idserver.name},
    )
    assert (status, body) == (200, {"id_server_unbind_result": "no-support"})
    assert idserver.bindings == {("email", EMAIL): "@carol:localhost"}


async def test_deactivation_unbinds_every_bound_address(hs, idserver):
    bob = await hs.register("bob", password="pw")
    await bind(hs, idserver, bob)
    await bind(hs, idserver, bob, "bob@work.example")
    status, body = await hs.request(
        "POST",
        f"{V3}/account/deactivate",
        token=bob["access_token"],
        json={
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": bob["user_id"]},
                "password": "pw",
            }
        },
    )
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert idserver.bindings == {}


async def test_bad_bind_requests(hs, idserver):
    bob = await hs.register("bob")
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/bind",
        token=bob["access_token"],
        json={"id_server": idserver.name, "sid": "x", "client_secret": "y"},
    )
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/bind",
        token=bob["access_token"],
        json={
            "id_server": "evil.example/x?",
            "id_access_token": ACCESS_TOKEN,
            "sid": "x",
            "client_secret": "y",
        },
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # The identity server's own refusal reaches the client.
    status, body = await hs.request(
        "POST",
        f"{V3}/account/3pid/bind",
        token=bob["access_token"],
        json={
            "id_server": idserver.name,
            "id_access_token": "wrong",
            "sid": "x",
            "client_secret": "y",
        },
    )
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    status, body = await hs.request("GET", f"{V3}/account/3pid", token=bob["access_token"])
    assert (status, body) == (200, {"threepids": []})
