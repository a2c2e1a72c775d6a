"""Every error of the client API's common layer, with its status and errcode,
and the cross-cutting behaviour: CORS, token in the query, percent-encoding,
body limits, rate limits and metrics."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from homeserver.api.http import matrix_middleware
from homeserver.metrics import Metrics
from tests.conftest import rate_limits_on

V3 = "/_matrix/client/v3"


async def test_unknown_path_and_wrong_method(hs):
    status, body = await hs.request("GET", "/_matrix/client/v3/no/such/endpoint")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await hs.request("DELETE", "/_matrix/client/versions")
    assert (status, body["errcode"]) == (405, "M_UNRECOGNIZED")


async def test_not_json_and_bad_json(hs):
    reg = await hs.register("jay")
    path = f"{V3}/user/@jay:localhost/account_data/org.example"
    for raw in (b"{not json", b"\xff\xfe{}", b'{"a": NaN}'):
        status, body = await hs.request(
            "PUT",
            path,
            token=reg["access_token"],
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["errcode"]) == (400, "M_NOT_JSON"), raw
    status, body = await hs.request(
        "POST", f"{V3}/login", json={"type": "m.login.password", "user": 5, "password": "x"}
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await hs.request("POST", f"{V3}/login", json={"type": 7})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    # Nothing was stored by the refused writes.
    status, body = await hs.request("GET", path, token=reg["access_token"])
    assert status == 404


async def test_missing_and_unknown_tokens(hs):
    status, body = await hs.request("GET", f"{V3}/account/whoami")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await hs.request("GET", f"{V3}/account/whoami", token="mha_bogus")
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    status, body = await hs.request(
        "GET", f"{V3}/account/whoami", headers={"Authorization": "Basic abc"}
    )
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_access_token_in_query_parameter(hs):
    reg = await hs.register("kim")
    status, body = await hs.request(
        "GET", f"{V3}/account/whoami?access_token={reg['access_token']}"
    )
    assert (status, body["user_id"]) == (200, "@kim:localhost")


async def test_forbidden(hs):
    kim = await hs.register("kim")
    await hs.register("lee")
    status, body = await hs.request(
        "PUT",
        f"{V3}/profile/@lee:localhost/avatar_url",
        token=kim["access_token"],
        json={"avatar_url": "mxc://x/y"},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_percent_encoded_path_parameters(hs):
    reg = await hs.register("mo")
    await hs.request(
        "PUT",
        f"{V3}/profile/%40mo%3Alocalhost/displayname",
        token=reg["access_token"],
        json={"displayname": "Mo"},
    )
    status, body = await hs.request("GET", f"{V3}/profile/%40mo%3Alocalhost/displayname")
    assert (status, body) == (200, {"displayname": "Mo"})
    # An account data type holding a slash, encoded as %2F, stays one path segment.
    path = f"{V3}/user/%40mo%3Alocalhost/account_data/org.example%2Fslashed"
    assert (await hs.request("PUT", path, token=reg["access_token"], json={"v": 1}))[0] == 200
    assert await hs.request("GET", path, token=reg["access_token"]) == (200, {"v": 1})


async def test_cors_headers_and_preflight(hs):
    async with hs.http.options(
        hs.url + f"{V3}/login",
        headers={"Origin": "https://app.element.io", "Access-Control-Request-Method": "POST"},
    ) as resp:
        assert resp.status in (200, 204)
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    async with hs.http.get(hs.url + "/_matrix/client/versions") as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with hs.http.get(hs.url + "/nowhere") as resp:
        assert resp.status == 404
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_body_too_large(server_factory):
    hs = await server_factory(max_request_body_bytes=1024)
    reg = await hs.register("nia")
    path = f"{V3}/user/@nia:localhost/account_data/org.example"
    status, body = await hs.request(
        "PUT", path, token=reg["access_token"], json={"big": "x" * 2000}
    )
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    assert (await hs.request("GET", path, token=reg["access_token"]))[0] == 404


async def test_login_rate_limited_per_ip(server_factory):
    hs = await server_factory(**rate_limits_on(login={"per_second": 0.1, "burst_count": 2}))
    await hs.register("ola", "pw", inhibit_login=True)
    login = {"type": "m.login.password", "user": "ola", "password": "pw"}
    assert (await hs.request("POST", f"{V3}/login", json=login))[0] == 200
    assert (await hs.request("POST", f"{V3}/login", json=login))[0] == 200
    status, body = await hs.request("POST", f"{V3}/login", json=login)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert 0 < body["retry_after_ms"] <= 10_000


async def test_registration_rate_limited_per_ip(server_factory):
    hs = await server_factory(**rate_limits_on(registration={"per_second": 0.1, "burst_count": 1}))
    await hs.register("pat")
    status, body = await hs.request(
        "POST", f"{V3}/register", json={"username": "quin", "auth": {"type": "m.login.dummy"}}
    )
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert (await hs.request("GET", f"{V3}/register/available?username=quin"))[0] == 429


async def test_writes_rate_limited_per_user(server_factory):
    hs = await server_factory(**rate_limits_on(client_writes={"per_second": 0.1, "burst_count": 3}))
    ray = await hs.register("ray")
    sue = await hs.register("sue")
    statuses = []
    for i in range(4):
        status, _ = await hs.request(
            "PUT", f"{V3}/user/@ray:localhost/account_data/t{i}", token=ray["access_token"], json={}
        )
        statuses.append(status)
    assert statuses == [200, 200, 200, 429]
    # Reads are not limited, and other users have their own budget.
    assert (await hs.request("GET", f"{V3}/account/whoami", token=ray["access_token"]))[0] == 200
    status, _ = await hs.request(
        "PUT", f"{V3}/user/@sue:localhost/account_data/t", token=sue["access_token"], json={}
    )
    assert status == 200


async def test_metrics_listener(server_factory):
    hs = await server_factory(metrics={"enabled": True, "listen": "127.0.0.1:0"})
    await hs.request("GET", "/_matrix/client/versions")
    await hs.request("GET", "/nowhere")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{hs.server.metrics_port}/metrics") as resp:
            text = await resp.text()
    assert (
        'homeserver_http_requests_total{endpoint="/_matrix/client/versions",method="GET",status="200"} 1.0'
        in text
    )
    assert 'status="404"' in text
    assert "homeserver_http_request_duration_seconds_bucket" in text
    assert "homeserver_db_pool_connections " in text


async def test_a_failing_handler_is_a_logged_500(caplog):
    """The other side of a client hanging up (test_media): a connected
    client gets 500 M_UNKNOWN, and the server logs the traceback."""

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("bug")

    app = web.Application(middlewares=[matrix_middleware(Metrics())])
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/broken") as resp:
                assert resp.status == 500
                assert (await resp.json())["errcode"] == "M_UNKNOWN"
    finally:
        await runner.cleanup()
    (failure,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure.exc_info is not None
