"""The account basics, driven by a real client library (matrix-nio) over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nio
import pytest


@pytest.fixture
async def nio_client(hs: Any) -> AsyncIterator[Any]:
    """Makes nio clients for the test server and closes them afterwards."""
    clients: list[nio.AsyncClient] = []

    def make(user: str = "") -> nio.AsyncClient:
        client = nio.AsyncClient(hs.url, user)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_register_with_dummy_flow_then_whoami(nio_client):
    alice = nio_client("alice")
    resp = await alice.register("alice", "wonderland", device_name="laptop")
    assert isinstance(resp, nio.RegisterResponse), resp
    assert resp.user_id == "@alice:localhost"
    who = await alice.whoami()
    assert isinstance(who, nio.WhoamiResponse), who
    assert who.user_id == "@alice:localhost"
    assert who.device_id == resp.device_id


async def test_register_name_taken_and_invalid(hs, nio_client):
    await hs.register("taken")
    resp = await nio_client("x").register("taken", "pw")
    assert isinstance(resp, nio.responses.RegisterErrorResponse)
    assert resp.status_code == "M_USER_IN_USE"
    status, body = await hs.request("GET", "/_matrix/client/v3/register/available?username=taken")
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    status, body = await hs.request("GET", "/_matrix/client/v3/register/available?username=free")
    assert (status, body) == (200, {"available": True})
    status, body = await hs.request(
        "GET", "/_matrix/client/v3/register/available?username=bad%20name"
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")


async def test_login_with_password_and_whoami(hs, nio_client):
    await hs.register("bob", "builder")
    bob = nio_client("@bob:localhost")
    resp = await bob.login("builder", device_name="phone")
    assert isinstance(resp, nio.LoginResponse), resp
    assert (await bob.whoami()).user_id == "@bob:localhost"
    wrong = await nio_client("@bob:localhost").login("not-it")
    assert isinstance(wrong, nio.LoginError)
    assert wrong.status_code == "M_FORBIDDEN"


async def test_login_identifier_forms_and_device_reuse(hs):
    await hs.register("carol", "pw")
    status, first = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "@carol:localhost"},
            "password": "pw",
            "device_id": "MYDEVICE",
            "initial_device_display_name": "Desk",
        },
    )
    assert status == 200 and first["device_id"] == "MYDEVICE"
    # The legacy top-level "user" field, with the same device: the old token dies.
    status, second = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "user": "carol",
            "password": "pw",
            "device_id": "MYDEVICE",
        },
    )
    assert status == 200 and second["device_id"] == "MYDEVICE"
    status, body = await hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=first["access_token"]
    )
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, devices = await hs.request(
        "GET", "/_matrix/client/v3/devices", token=second["access_token"]
    )
    names = {d["device_id"]: d["display_name"] for d in devices["devices"]}
    assert names["MYDEVICE"] == "Desk"


async def test_devices_list_rename_and_delete_with_uia(hs, nio_client):
    await hs.register("dave", "pw", inhibit_login=True)
    laptop = nio_client("@dave:localhost")
    phone = nio_client("@dave:localhost")
    assert isinstance(await laptop.login("pw", device_name="laptop"), nio.LoginResponse)
    assert isinstance(await phone.login("pw", device_name="phone"), nio.LoginResponse)

    listed = await laptop.devices()
    assert isinstance(listed, nio.DevicesResponse)
    by_id = {d.id: d.display_name for d in listed.devices}
    assert by_id[laptop.device_id] == "laptop" and by_id[phone.device_id] == "phone"

    renamed = await laptop.update_device(phone.device_id, {"display_name": "old phone"})
    assert isinstance(renamed, nio.UpdateDeviceResponse)
    status, device = await hs.request(
        "GET", f"/_matrix/client/v3/devices/{phone.device_id}", token=laptop.access_token
    )
    assert (status, device["display_name"]) == (200, "old phone")

    # Without auth: the UIA challenge, and the device is still there.
    challenge = await laptop.delete_devices([phone.device_id])
    assert isinstance(challenge, nio.DeleteDevicesAuthResponse)
    assert ["m.login.password"] in [f["stages"] for f in challenge.flows]
    assert (await phone.whoami()).user_id == "@dave:localhost"

    # A wrong password does not delete it either.
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/delete_devices",
        token=laptop.access_token,
        json={
            "devices": [phone.device_id],
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "dave"},
                "password": "wrong",
                "session": challenge.session,
            },
        },
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    assert body["session"] == challenge.session and body["flows"]

    deleted = await laptop.delete_devices(
        [phone.device_id],
        auth={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "dave"},
            "password": "pw",
            "session": challenge.session,
        },
    )
    assert isinstance(deleted, nio.DeleteDevicesResponse), deleted
    gone = await phone.whoami()
    assert isinstance(gone, nio.WhoamiError) and gone.status_code == "M_UNKNOWN_TOKEN"
    remaining = await laptop.devices()
    assert [d.id for d in remaining.devices] == [laptop.device_id]


async def test_delete_single_device_endpoint(hs):
    reg = await hs.register("erin", "pw")
    token, device = reg["access_token"], reg["device_id"]
    status, other = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": "erin", "password": "pw"},
    )
    path = f"/_matrix/client/v3/devices/{other['device_id']}"
    status, body = await hs.request("DELETE", path, token=token, json={})
    assert status == 401 and body["flows"] == [{"stages": ["m.login.password"]}]
    status, _ = await hs.request(
        "DELETE",
        path,
        token=token,
        json={
            "auth": {
                "type": "m.login.password",
                "user": "erin",
                "password": "pw",
                "session": body["session"],
            }
        },
    )
    assert status == 200
    status, body = await hs.request("GET", path, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, _ = await hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=other["access_token"]
    )
    assert status == 401
    status, _ = await hs.request("GET", f"/_matrix/client/v3/devices/{device}", token=token)
    assert status == 200


async def test_profile_set_by_one_user_read_by_another(hs, nio_client):
    await hs.register("frank", "pw")
    await hs.register("grace", "pw")
    frank = nio_client("@frank:localhost")
    grace = nio_client("@grace:localhost")
    await frank.login("pw")
    await grace.login("pw")
    assert isinstance(await frank.set_displayname("Frank F."), nio.ProfileSetDisplayNameResponse)
    assert isinstance(await frank.set_avatar("mxc://localhost/abc"), nio.ProfileSetAvatarResponse)
    name = await grace.get_displayname("@frank:localhost")
    assert name.displayname == "Frank F."
    avatar = await grace.get_avatar("@frank:localhost")
    assert avatar.avatar_url == "mxc://localhost/abc"
    profile = await grace.get_profile("@frank:localhost")
    assert (profile.displayname, profile.avatar_url) == ("Frank F.", "mxc://localhost/abc")
    # Nobody may change another user's profile.
    status, body = await hs.request(
        "PUT",
        "/_matrix/client/v3/profile/@frank:localhost/displayname",
        token=grace.access_token,
        json={"displayname": "hacked"},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await grace.get_displayname("@frank:localhost")).displayname == "Frank F."
    missing = await grace.get_profile("@nobody:localhost")
    assert isinstance(missing, nio.ProfileGetError)
    status, body = await hs.request("GET", "/_matrix/client/v3/profile/@nobody:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_logout_kills_only_that_token_and_logout_all_kills_every_one(hs, nio_client):
    await hs.register("heidi", "pw")
    one, two, three = (nio_client("@heidi:localhost") for _ in range(3))
    for client in (one, two, three):
        assert isinstance(await client.login("pw"), nio.LoginResponse)
    tokens = [c.access_token for c in (one, two, three)]
    assert isinstance(await one.logout(), nio.LogoutResponse)
    status, _ = await hs.request("GET", "/_matrix/client/v3/account/whoami", token=tokens[0])
    assert status == 401
    assert (await two.whoami()).user_id == "@heidi:localhost"
    devices = await two.devices()
    assert one.device_id not in {d.id for d in devices.devices}

    assert isinstance(await two.logout(all_devices=True), nio.LogoutResponse)
    for token in tokens[1:]:
        status, body = await hs.request("GET", "/_matrix/client/v3/account/whoami", token=token)
        assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
