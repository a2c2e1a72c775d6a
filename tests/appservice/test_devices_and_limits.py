"""MSC4190 device management and `rate_limited: false`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.appservice.conftest import AS_TOKEN, Bridge, registration, write_registrations
from tests.conftest import rate_limits_on

pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated")

V3 = "/_matrix/client/v3"
GHOST = "user_id=%40bridge_dev:localhost"


async def test_devices_are_created_and_deleted_without_uia(bridge: Bridge) -> None:
    hs = bridge.hs
    status, _ = await hs.request(
        "POST",
        f"{V3}/register",
        token=AS_TOKEN,
        json={
            "type": "m.login.application_service",
            "username": "bridge_dev",
            "inhibit_login": True,
        },
    )
    assert status == 200
    path = f"{V3}/devices/PHONE?{GHOST}"
    status, body = await hs.request("PUT", path, token=AS_TOKEN, json={"display_name": "Phone"})
    assert (status, body) == (201, {})
    # Again: it exists now, so this is a rename (200).
    status, _ = await hs.request("PUT", path, token=AS_TOKEN, json={"display_name": "Mobile"})
    assert status == 200
    status, device = await hs.request("GET", path, token=AS_TOKEN)
    assert device["display_name"] == "Mobile"
    # The device can be masqueraded as now (MSC4326).
    status, me = await hs.request(
        "GET", f"{V3}/account/whoami?{GHOST}&device_id=PHONE", token=AS_TOKEN
    )
    assert me == {"user_id": "@bridge_dev:localhost", "device_id": "PHONE", "is_guest": False}
    status, _ = await hs.request("DELETE", path, token=AS_TOKEN, json={})
    assert status == 200
    status, listed = await hs.request("GET", f"{V3}/devices?{GHOST}", token=AS_TOKEN)
    assert listed["devices"] == []
    await hs.request("PUT", f"{V3}/devices/A?{GHOST}", token=AS_TOKEN, json={})
    await hs.request("PUT", f"{V3}/devices/B?{GHOST}", token=AS_TOKEN, json={})
    status, _ = await hs.request(
        "POST", f"{V3}/delete_devices?{GHOST}", token=AS_TOKEN, json={"devices": ["A", "B"]}
    )
    assert status == 200
    status, listed = await hs.request("GET", f"{V3}/devices?{GHOST}", token=AS_TOKEN)
    assert listed["devices"] == []


async def test_users_still_need_uia_and_cannot_create_devices(bridge: Bridge) -> None:
    alice = await bridge.hs.register("alice")
    token = alice["access_token"]
    status, err = await bridge.hs.request("PUT", f"{V3}/devices/NEW", token=token, json={})
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await bridge.hs.request(
        "DELETE", f"{V3}/devices/{alice['device_id']}", token=token, json={}
    )
    assert status == 401 and "flows" in body


async def test_without_msc4190_devices_are_not_created_but_deleted(
    server_factory: Any, tmp_path: Path
) -> None:
    paths = write_registrations(tmp_path, registration(None, **{"io.element.msc4190": False}))
    hs = await server_factory(app_service_config_files=paths)
    status, err = await hs.request("PUT", f"{V3}/devices/NEW", token=AS_TOKEN, json={})
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    # Deleting and deactivating need no UIA from any appservice (as in Synapse).
    status, body = await hs.request(
        "POST",
        f"{V3}/register",
        token=AS_TOKEN,
        json={"type": "m.login.application_service", "username": "bridge_old"},
    )
    ghost = "user_id=%40bridge_old:localhost"
    status, _ = await hs.request(
        "DELETE", f"{V3}/devices/{body['device_id']}?{ghost}", token=AS_TOKEN, json={}
    )
    assert status == 200
    status, _ = await hs.request("POST", f"{V3}/account/deactivate?{ghost}", token=AS_TOKEN)
    assert status == 200
    status, err = await hs.request(
        "GET", "/_matrix/client/v3/profile/%40bridge_old:localhost", token=AS_TOKEN
    )
    assert status == 404


async def test_rate_limited_false_is_never_limited(server_factory: Any, tmp_path: Path) -> None:
    paths = write_registrations(
        tmp_path,
        registration(None),
        registration(
            None,
            id="limited",
            as_token="as-limited",
            hs_token="hs-limited",
            sender_localpart="limitedbot",
            namespaces={},
            rate_limited=True,
        ),
    )
    slow = {"per_second": 0.01, "burst_count": 2}
    hs = await server_factory(
        app_service_config_files=paths,
        **rate_limits_on(client_writes=slow, registration=slow),
    )
    # A bridge creates its ghosts in bursts: no per-IP registration limit for it.
    for i in range(5):
        status, _ = await hs.request(
            "POST",
            f"{V3}/register",
            token=AS_TOKEN,
            json={
                "type": "m.login.application_service",
                "username": f"bridge_burst{i}",
                "inhibit_login": True,
            },
        )
        assert status == 200
    statuses = {}
    for token in (AS_TOKEN, "as-limited"):
        _, room = await hs.request("POST", f"{V3}/createRoom", token=token, json={})
        codes = []
        for i in range(6):
            status, _ = await hs.request(
                "PUT",
                f"{V3}/rooms/{room['room_id']}/send/m.room.message/t{i}",
                token=token,
                json={"msgtype": "m.text", "body": str(i)},
            )
            codes.append(status)
        statuses[token] = codes
    assert statuses[AS_TOKEN] == [200] * 6
    assert 429 in statuses["as-limited"]
