"""Every masquerade, registration, login and alias an appservice (or anyone
else) may not make, each with the error the spec or Synapse gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.appservice.conftest import AS_TOKEN, Bridge, registration, write_registrations

pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated")

V3 = "/_matrix/client/v3"
WHOAMI = f"{V3}/account/whoami"


async def as_register(bridge: Bridge, username: str, **extra: Any) -> tuple[int, Any]:
    return await bridge.hs.request(
        "POST",
        f"{V3}/register",
        token=AS_TOKEN,
        json={"type": "m.login.application_service", "username": username, **extra},
    )


@pytest.mark.parametrize(
    ("user_id", "why"),
    [
        ("@alice:localhost", "outside the namespace"),
        ("@bridge_x:elsewhere", "another server's user"),
        ("@bridge_never_registered:localhost", "in the namespace, never registered"),
    ],
)
async def test_masquerading_outside_what_it_owns_is_forbidden(
    bridge: Bridge, user_id: str, why: str
) -> None:
    status, body = await bridge.hs.request(
        "GET", f"{WHOAMI}?user_id={user_id.replace('@', '%40')}", token=AS_TOKEN
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), why


async def test_masquerading_as_a_real_user_outside_the_namespace(bridge: Bridge) -> None:
    await bridge.hs.register("alice")
    status, body = await bridge.hs.request(
        "PUT",
        f"{V3}/profile/%40alice:localhost/displayname?user_id=%40alice:localhost",
        token=AS_TOKEN,
        json={"displayname": "hijacked"},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await bridge.hs.request("GET", f"{V3}/profile/%40alice:localhost")
    assert body["displayname"] == "alice"


async def test_user_id_and_device_id_assertion(bridge: Bridge) -> None:
    status, _ = await as_register(bridge, "bridge_dev", inhibit_login=True)
    assert status == 200
    status, body = await bridge.hs.request(
        "GET", f"{WHOAMI}?user_id=%40bridge_dev:localhost", token=AS_TOKEN
    )
    assert (status, body) == (200, {"user_id": "@bridge_dev:localhost", "is_guest": False})
    status, body = await bridge.hs.request("GET", WHOAMI, token=AS_TOKEN)
    assert body["user_id"] == "@bridgebot:localhost"
    for param, errcode in [
        ("device_id", "M_UNKNOWN_DEVICE"),
        ("org.matrix.msc3202.device_id", "ORG.MATRIX.MSC4326.M_UNKNOWN_DEVICE"),
    ]:
        status, body = await bridge.hs.request(
            "GET", f"{WHOAMI}?user_id=%40bridge_dev:localhost&{param}=NOPE", token=AS_TOKEN
        )
        assert (status, body["errcode"]) == (400, errcode)


async def test_a_user_token_with_user_id_acts_as_its_own_user(bridge: Bridge) -> None:
    alice = await bridge.hs.register("alice")
    await as_register(bridge, "bridge_dev", inhibit_login=True)
    status, body = await bridge.hs.request(
        "GET", f"{WHOAMI}?user_id=%40bridge_dev:localhost", token=alice["access_token"]
    )
    assert status == 200 and body["user_id"] == "@alice:localhost"


async def test_appservice_registration_errors(bridge: Bridge) -> None:
    body = {"type": "m.login.application_service", "username": "bridge_a"}
    # The spec's answer to no token (Synapse: 400 M_UNKNOWN).
    status, err = await bridge.hs.request("POST", f"{V3}/register", json=body)
    assert (status, err["errcode"]) == (401, "M_MISSING_TOKEN")
    alice = await bridge.hs.register("alice")
    status, err = await bridge.hs.request(
        "POST", f"{V3}/register", json=body, token=alice["access_token"]
    )
    assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, err = await as_register(bridge, "notbridge")
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, err = await as_register(bridge, "bridge bad")
    assert (status, err["errcode"]) == (400, "M_INVALID_USERNAME")
    status, err = await bridge.hs.request(
        "GET", f"{V3}/account/whoami?user_id=%40bridge_a:localhost", token=AS_TOKEN
    )
    assert status == 403  # none of the refused registrations made the account


async def test_appservice_registration_logs_in_unless_inhibited(bridge: Bridge) -> None:
    status, body = await as_register(bridge, "bridge_b", device_id="DEV1")
    assert status == 200 and body["device_id"] == "DEV1"
    status, me = await bridge.hs.request("GET", WHOAMI, token=body["access_token"])
    assert me == {"user_id": "@bridge_b:localhost", "device_id": "DEV1", "is_guest": False}


async def test_others_cannot_register_in_an_exclusive_namespace(bridge: Bridge) -> None:
    status, err = await bridge.hs.request(
        "POST",
        f"{V3}/register",
        json={"username": "bridge_c", "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, err = await bridge.hs.request("GET", f"{V3}/register/available?username=bridge_c")
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, err = await bridge.hs.request("GET", f"{V3}/register/available?username=bridgebot")
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")


async def test_appservice_login(bridge: Bridge) -> None:
    await as_register(bridge, "bridge_d", inhibit_login=True)
    await bridge.hs.register("alice")
    status, flows = await bridge.hs.request("GET", f"{V3}/login")
    assert {"type": "m.login.application_service"} in flows["flows"]

    def login(user: str) -> dict[str, Any]:
        return {
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": user},
        }

    status, body = await bridge.hs.request(
        "POST", f"{V3}/login", json=login("bridge_d"), token=AS_TOKEN
    )
    assert status == 200 and body["user_id"] == "@bridge_d:localhost"
    status, me = await bridge.hs.request("GET", WHOAMI, token=body["access_token"])
    assert me["user_id"] == "@bridge_d:localhost"
    # Outside the namespace: M_EXCLUSIVE, as the issue asks (Synapse: M_FORBIDDEN).
    status, err = await bridge.hs.request(
        "POST", f"{V3}/login", json=login("alice"), token=AS_TOKEN
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, err = await bridge.hs.request("POST", f"{V3}/login", json=login("bridge_d"))
    assert (status, err["errcode"]) == (401, "M_MISSING_TOKEN")
    status, err = await bridge.hs.request(
        "POST", f"{V3}/login", json=login("bridge_d"), token="not-a-token"
    )
    assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_exclusive_aliases(bridge: Bridge) -> None:
    alice = await bridge.hs.register("alice")
    token = alice["access_token"]
    status, room = await bridge.hs.request("POST", f"{V3}/createRoom", token=token, json={})
    room_id = room["room_id"]
    status, err = await bridge.hs.request(
        "PUT",
        f"{V3}/directory/room/%23bridge_taken:localhost",
        token=token,
        json={"room_id": room_id},
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, err = await bridge.hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"room_alias_name": "bridge_mine"}
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    # The appservice may alias it (it need not be in the room), but only in its namespace.
    status, _ = await bridge.hs.request(
        "PUT",
        f"{V3}/directory/room/%23bridge_taken:localhost",
        token=AS_TOKEN,
        json={"room_id": room_id},
    )
    assert status == 200
    status, err = await bridge.hs.request(
        "PUT",
        f"{V3}/directory/room/%23general:localhost",
        token=AS_TOKEN,
        json={"room_id": room_id},
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    # Nor may others delete the appservice's alias.
    status, err = await bridge.hs.request(
        "DELETE", f"{V3}/directory/room/%23bridge_taken:localhost", token=token
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, found = await bridge.hs.request("GET", f"{V3}/directory/room/%23bridge_taken:localhost")
    assert found["room_id"] == room_id


async def test_bad_ts(bridge: Bridge) -> None:
    status, room = await bridge.hs.request("POST", f"{V3}/createRoom", token=AS_TOKEN, json={})
    for bad in ("abc", "-5", "1.5", str(2**60)):
        status, err = await bridge.hs.request(
            "PUT",
            f"{V3}/rooms/{room['room_id']}/send/m.room.message/t-{bad}?ts={bad}",
            token=AS_TOKEN,
            json={"msgtype": "m.text", "body": "x"},
        )
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM"), bad


async def test_another_appservice_cannot_take_an_exclusive_user(
    server_factory: Any, tmp_path: Path
) -> None:
    """A second bridge whose (non-exclusive) namespace overlaps the first's
    exclusive one may neither register nor act as those users."""
    paths = write_registrations(
        tmp_path,
        registration(None),
        registration(
            None,
            id="greedy",
            as_token="as-greedy",
            hs_token="hs-greedy",
            sender_localpart="greedybot",
            namespaces={"users": [{"exclusive": False, "regex": "@.*:localhost"}]},
        ),
    )
    hs = await server_factory(app_service_config_files=paths)
    status, err = await hs.request(
        "POST",
        f"{V3}/register",
        token="as-greedy",
        json={"type": "m.login.application_service", "username": "bridge_x"},
    )
    assert (status, err["errcode"]) == (400, "M_EXCLUSIVE")
    status, _ = await hs.request(
        "POST",
        f"{V3}/register",
        token="as-greedy",
        json={"type": "m.login.application_service", "username": "plain", "inhibit_login": True},
    )
    assert status == 200
