"""`POST /_matrix/client/v1/appservice/{appserviceId}/ping` and its errors.

The successful ping of a real mautrix appservice is in test_mautrix_bridge.py;
here, the appservices that cannot be reached in each way the spec names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from homeserver.appservice.client import AppServiceClient
from homeserver.appservice.registration import load_appservices
from homeserver.errors import MatrixError
from tests.appservice.conftest import free_port, registration, write_registrations
from tests.conftest import RunningServer

V1 = "/_matrix/client/v1"


def service(service_id: str, url: str | None) -> dict[str, Any]:
    return registration(
        url,
        id=service_id,
        as_token=f"as-{service_id}",
        hs_token=f"hs-{service_id}",
        sender_localpart=f"{service_id}bot",
        namespaces={"users": [{"exclusive": True, "regex": f"@{service_id}_.*:localhost"}]},
    )


@pytest.fixture
async def broken_appservice() -> AsyncIterator[tuple[str, list[Any]]]:
    """An appservice that answers its pings with 500, and what it was sent."""
    seen: list[Any] = []

    async def ping(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), await request.json()))
        return web.Response(status=500, text='{"errcode":"M_UNKNOWN","error":"on fire"}')

    app = web.Application()
    app.router.add_post("/_matrix/app/v1/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
async def hs_with_services(
    server_factory: Any, tmp_path: Path, broken_appservice: tuple[str, list[Any]]
) -> RunningServer:
    paths = write_registrations(
        tmp_path,
        service("nourl", None),
        service("refused", f"http://127.0.0.1:{free_port()}"),
        service("broken", broken_appservice[0]),
    )
    return await server_factory(app_service_config_files=paths)


async def ping(hs: RunningServer, service_id: str, token: str | None) -> tuple[int, Any]:
    return await hs.request(
        "POST",
        f"{V1}/appservice/{service_id}/ping",
        token=token,
        json={"transaction_id": "txn-1"},
    )


async def test_no_url(hs_with_services: RunningServer) -> None:
    status, err = await ping(hs_with_services, "nourl", "as-nourl")
    assert (status, err["errcode"]) == (400, "M_URL_NOT_SET")


async def test_connection_refused(hs_with_services: RunningServer) -> None:
    status, err = await ping(hs_with_services, "refused", "as-refused")
    assert (status, err["errcode"]) == (502, "M_CONNECTION_FAILED")


async def test_bad_status(
    hs_with_services: RunningServer, broken_appservice: tuple[str, list[Any]]
) -> None:
    status, err = await ping(hs_with_services, "broken", "as-broken")
    assert (status, err["errcode"], err["status"]) == (502, "M_BAD_STATUS", 500)
    assert "on fire" in err["body"]
    # The appservice was called with its hs_token and the transaction id.
    assert broken_appservice[1] == [("Bearer hs-broken", {"transaction_id": "txn-1"})]


async def test_only_the_appservice_itself_may_ping(hs_with_services: RunningServer) -> None:
    status, err = await ping(hs_with_services, "broken", "as-nourl")
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await ping(hs_with_services, "unknown", "as-nourl")
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    user = await hs_with_services.register("alice")
    status, err = await ping(hs_with_services, "broken", user["access_token"])
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await ping(hs_with_services, "broken", None)
    assert (status, err["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_a_slow_appservice_times_out(tmp_path: Path) -> None:
    """M_CONNECTION_TIMEOUT, with a short timeout so the test stays fast."""
    release = asyncio.Event()

    async def ping(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/_matrix/app/v1/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    paths = write_registrations(tmp_path, service("slow", f"http://127.0.0.1:{port}"))
    (slow,) = load_appservices(paths, "localhost").all()
    client = AppServiceClient(ping_timeout_s=0.2)
    try:
        with pytest.raises(MatrixError) as err:
            await client.ping(slow, "txn")
        assert (err.value.status, err.value.errcode) == (504, "M_CONNECTION_TIMEOUT")
    finally:
        release.set()
        await client.close()
        await runner.cleanup()
