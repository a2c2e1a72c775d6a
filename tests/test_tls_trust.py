"""Outbound HTTPS trusts the CA bundle named by `outbound_tls_ca_file`, and
only then (or with checking turned off for test harnesses)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from homeserver.config import ConfigError
from homeserver.tls_trust import outbound_ssl_context
from tests.conftest import make_config
from tests.fake_identity_server import (
    ACCESS_TOKEN,
    CaFiles,
    FakeIdentityServer,
    make_ca,
    server_tls,
)


@pytest.fixture
def ca(tmp_path: Path) -> CaFiles:
    return make_ca(tmp_path)


@pytest.fixture
async def https_url(ca: CaFiles) -> AsyncIterator[str]:
    app = web.Application()

    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls(ca))
    await site.start()
    assert site._server is not None
    yield f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
    await runner.cleanup()


async def fetch(url: str, context: ssl.SSLContext) -> Any:
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(url) as resp:
            return await resp.json()


async def test_private_ca_is_trusted_only_when_configured(https_url, ca):
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await fetch(https_url, outbound_ssl_context(None))
    assert await fetch(https_url, outbound_ssl_context(ca.ca_file)) == {"hello": "world"}
    assert await fetch(https_url, outbound_ssl_context(None, insecure=True)) == {"hello": "world"}


async def test_system_authorities_stay_trusted_with_a_bundle(ca):
    system = outbound_ssl_context(None).cert_store_stats()["x509_ca"]
    assert outbound_ssl_context(ca.ca_file).cert_store_stats()["x509_ca"] == system + 1


def test_missing_bundle_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="outbound_tls_ca_file"):
        make_config("postgresql://unused", tmp_path, outbound_tls_ca_file="nowhere.pem")


async def test_identity_server_behind_an_unknown_ca_is_not_reached(server_factory, ca):
    idserver = FakeIdentityServer()
    await idserver.start(ca)
    try:
        hs = await server_factory()
        bob = await hs.register("bob")
        idserver.validate("sid", "email", "bob@example.org")
        status, body = await hs.request(
            "POST",
            "/_matrix/client/v3/account/3pid/bind",
            token=bob["access_token"],
            json={
                "id_server": idserver.name,
                "id_access_token": ACCESS_TOKEN,
                "sid": "sid",
                "client_secret": "secret",
            },
        )
        assert (status, body["errcode"]) == (502, "M_UNKNOWN")
        assert idserver.bindings == {}
    finally:
        await idserver.stop()
