"""What an operator sees of the pushes to appservices: the admin API lists
every appservice with its queue depth and last success, and the metrics
listener exports events sent, failures, queue length and delivery latency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.admin.conftest import make_admin
from tests.appservice.delivery_setup import registration, start_bridged
from tests.appservice.loopback import LoopbackAppService
from tests.appservice.test_delivery import BRIDGE_USERS, bodies, bridged_room, send


@pytest.fixture
async def bridge() -> Any:
    service = LoopbackAppService("hs_bridge")
    await service.start()
    yield service
    await service.stop()


async def metrics_text(hs: Any) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{hs.server.metrics_port}/metrics") as resp:
            return await resp.text()


async def test_admin_lists_appservices_with_queue_depth_and_last_success(
    server_factory, tmp_path, bridge
):
    hs = await start_bridged(
        server_factory,
        tmp_path,
        registration("bridge", bridge.url, BRIDGE_USERS),
        registration("silent", None, r"@silent_.*:localhost"),
        metrics={"enabled": True, "listen": "127.0.0.1:0"},
    )
    admin = await make_admin(hs)
    alice, _, room_id = await bridged_room(hs)
    before = int(time.time() * 1000)
    await send(hs, alice, room_id, "delivered")
    await bridge.wait_for(lambda: bodies(bridge, room_id) == ["delivered"])
    # The acknowledgement is stored just after the appservice answered.
    async with asyncio.timeout(10):
        while True:
            status, listed = await admin.call("GET", "/v1/appservices")
            assert status == 200, listed
            if listed["appservices"][0]["queue_depth"] == 0:
                break
            await asyncio.sleep(0.05)
    assert listed["total"] == 2
    by_id = {a["id"]: a for a in listed["appservices"]}
    assert by_id["bridge"]["url"] == bridge.url
    assert by_id["bridge"]["queue_depth"] == 0
    assert by_id["bridge"]["last_success_ts"] >= before
    assert by_id["silent"]["url"] is None
    assert by_id["silent"]["last_success_ts"] is None

    # While the appservice refuses, the queue grows and failures are counted.
    bridge.failing = True
    for i in range(3):
        await send(hs, alice, room_id, f"queued {i}")
    await bridge.wait_for(lambda: bridge.attempts > len(bridge.transactions))
    status, one = await admin.call("GET", "/v1/appservices/bridge")
    assert status == 200, one
    assert one["queue_depth"] >= 3
    assert one["pending_txn_id"] is not None
    assert one["failures"] >= 1
    text = await metrics_text(hs)
    assert 'homeserver_appservice_transaction_failures_total{appservice="bridge"}' in text
    assert 'homeserver_appservice_queue_events{appservice="bridge"}' in text
    assert 'homeserver_appservice_events_sent_total{appservice="bridge"}' in text
    assert 'homeserver_appservice_delivery_latency_seconds_count{appservice="bridge"}' in text

    status, missing = await admin.call("GET", "/v1/appservices/nobody")
    assert status == 404 and missing["errcode"] == "M_NOT_FOUND"
    status, refused = await hs.request("GET", "/_synapse/admin/v1/appservices", token=alice)
    assert status == 403 and refused["errcode"] == "M_FORBIDDEN"
