"""Suspending and locking accounts (spec v1.13/v1.18, MSC4323): the admin
endpoints with their errors, the capability, and what a suspended or locked
account may still do, checked over HTTP and with matrix-nio."""

from __future__ import annotations

from typing import Any

import nio
import pytest

from tests.admin.conftest import Admin, make_admin
from tests.appservice.conftest import AS_TOKEN, registration, write_registrations

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
UNSTABLE = "/_matrix/client/unstable/uk.timedout.msc4323"


async def _call(hs: Any, token: str, method: str, path: str, json: Any = None) -> Any:
    return await hs.request(method, path, token=token, json=json)


@pytest.fixture
async def world(admin: Admin) -> dict[str, Any]:
    """Alice's public room where Mallory posted; Mallory will be suspended."""
    hs = admin.hs
    alice = (await hs.register("alice"))["access_token"]
    registered = await hs.register("mallory")
    mallory = registered["access_token"]
    status, body = await _call(hs, alice, "POST", f"{V3}/createRoom", {"preset": "public_chat"})
    assert status == 200
    room_id = body["room_id"]
    assert (await _call(hs, mallory, "POST", f"{V3}/join/{room_id}"))[0] == 200
    send = f"{V3}/rooms/{room_id}/send/m.room.message"
    _, own = await _call(hs, mallory, "PUT", f"{send}/m1", {"msgtype": "m.text", "body": "spam"})
    _, alices = await _call(hs, alice, "PUT", f"{send}/a1", {"msgtype": "m.text", "body": "hi"})
    status, other = await _call(hs, alice, "POST", f"{V3}/createRoom", {"preset": "public_chat"})
    return {
        "alice": alice,
        "mallory": mallory,
        "mallory_device": registered["device_id"],
        "room_id": room_id,
        "other_room": other["room_id"],
        "own_event": own["event_id"],
        "alices_event": alices["event_id"],
    }


async def test_suspend_and_unsuspend(admin, world):
    hs = admin.hs
    path = f"{V1}/admin/suspend/@mallory:localhost"
    assert await admin.hs.request("GET", path, token=admin.token) == (200, {"suspended": False})
    status, body = await hs.request("PUT", path, token=admin.token, json={"suspended": True})
    assert (status, body) == (200, {"suspended": True})
    assert await hs.request("GET", path, token=admin.token) == (200, {"suspended": True})
    # Synapse's admin API reports it too.
    _, details = await admin.call("GET", "/v2/users/@mallory:localhost")
    assert details["suspended"] is True and details["locked"] is False

    mallory, room_id = world["mallory"], world["room_id"]
    refused = [
        ("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/m2", {"msgtype": "m.text", "body": "x"}),
        ("PUT", f"{V3}/rooms/{room_id}/state/m.room.topic/", {"topic": "mine now"}),
        ("POST", f"{V3}/createRoom", {}),
        ("POST", f"{V3}/join/{world['other_room']}", {}),
        ("POST", f"{V3}/knock/{world['other_room']}", {}),
        ("POST", f"{V3}/rooms/{room_id}/invite", {"user_id": "@alice:localhost"}),
        ("PUT", f"{V3}/profile/@mallory:localhost/displayname", {"displayname": "Admin"}),
        ("DELETE", f"{V3}/profile/@mallory:localhost/avatar_url", None),
        ("PUT", f"{V3}/rooms/{room_id}/redact/{world['alices_event']}/r1", {}),
        ("POST", f"{V3}/rooms/{room_id}/upgrade", {"new_version": "10"}),
    ]
    for method, path_, body_ in refused:
        status, body = await _call(hs, mallory, method, path_, body_)
        assert (status, body["errcode"]) == (403, "M_USER_SUSPENDED"), (path_, body)
    # Nothing of it happened.
    status, members = await _call(hs, world["alice"], "GET", f"{V3}/rooms/{room_id}/joined_members")
    assert set(members["joined"]) == {"@alice:localhost", "@mallory:localhost"}
    status, topic = await _call(hs, mallory, "GET", f"{V3}/rooms/{room_id}/state/m.room.topic/")
    assert status == 404
    _, profile = await hs.request("GET", f"{V3}/profile/@mallory:localhost")
    assert profile.get("displayname") == "mallory"

    # What a suspended account may still do: read, redact its own events, leave.
    assert (await _call(hs, mallory, "GET", f"{V3}/sync?timeout=0"))[0] == 200
    status, _ = await _call(hs, mallory, "GET", f"{V3}/rooms/{room_id}/messages?dir=b")
    assert status == 200
    own = world["own_event"]
    status, _ = await _call(hs, mallory, "PUT", f"{V3}/rooms/{room_id}/redact/{own}/r2", {})
    assert status == 200
    assert (await _call(hs, mallory, "GET", f"{V3}/account/whoami"))[0] == 200
    assert (await _call(hs, mallory, "POST", f"{V3}/rooms/{room_id}/leave", {}))[0] == 200

    status, body = await hs.request("PUT", path, token=admin.token, json={"suspended": False})
    assert (status, body) == (200, {"suspended": False})
    assert (await _call(hs, mallory, "POST", f"{V3}/join/{room_id}"))[0] == 200


async def test_a_suspended_client_sees_the_error_in_nio(admin, world):
    hs = admin.hs
    await admin.hs.request(
        "PUT",
        f"{V1}/admin/suspend/@mallory:localhost",
        token=admin.token,
        json={"suspended": True},
    )
    client = nio.AsyncClient(hs.url, "@mallory:localhost")
    client.restore_login("@mallory:localhost", world["mallory_device"], world["mallory"])
    try:
        resp = await client.room_send(
            world["room_id"], "m.room.message", {"msgtype": "m.text", "body": "hi"}
        )
        assert isinstance(resp, nio.RoomSendError)
        assert resp.status_code == "M_USER_SUSPENDED"
        joined = await client.join(world["other_room"])
        assert isinstance(joined, nio.JoinError) and joined.status_code == "M_USER_SUSPENDED"
        synced = await client.sync(timeout=0)
        assert isinstance(synced, nio.SyncResponse)
        assert world["room_id"] in synced.rooms.join
    finally:
        await client.close()


async def test_lock_and_unlock(admin, world):
    hs = admin.hs
    mallory = world["mallory"]
    path = f"{V1}/admin/lock/@mallory:localhost"
    assert await hs.request("GET", path, token=admin.token) == (200, {"locked": False})
    status, body = await hs.request("PUT", path, token=admin.token, json={"locked": True})
    assert (status, body) == (200, {"locked": True})
    for method, path_ in (
        ("GET", f"{V3}/sync?timeout=0"),
        ("GET", f"{V3}/account/whoami"),
        ("GET", f"{V3}/rooms/{world['room_id']}/messages?dir=b"),
        ("PUT", f"{V3}/rooms/{world['room_id']}/send/m.room.message/l1"),
    ):
        status, body = await _call(hs, mallory, method, path_, {})
        assert status == 401 and body["errcode"] == "M_USER_LOCKED", path_
        assert body["soft_logout"] is True
    assert await hs.request("GET", path, token=admin.token) == (200, {"locked": True})
    _, details = await admin.call("GET", "/v2/users/@mallory:localhost")
    assert details["locked"] is True
    status, body = await hs.request("PUT", path, token=admin.token, json={"locked": False})
    assert (status, body) == (200, {"locked": False})
    assert (await _call(hs, mallory, "GET", f"{V3}/account/whoami"))[0] == 200


async def test_unstable_paths_and_synapse_admin_suspend(admin, world):
    hs = admin.hs
    status, body = await hs.request(
        "PUT", f"{UNSTABLE}/admin/lock/@mallory:localhost", token=admin.token, json={"locked": True}
    )
    assert (status, body) == (200, {"locked": True})
    status, body = await hs.request("GET", f"{V1}/admin/lock/@mallory:localhost", token=admin.token)
    assert body == {"locked": True}
    await hs.request(
        "PUT",
        f"{UNSTABLE}/admin/lock/@mallory:localhost",
        token=admin.token,
        json={"locked": False},
    )
    status, body = await admin.call("PUT", "/v1/suspend/@mallory:localhost", {"suspend": True})
    assert (status, body) == (200, {"user_@mallory:localhost_suspended": True})
    status, body = await hs.request(
        "GET", f"{UNSTABLE}/admin/suspend/@mallory:localhost", token=admin.token
    )
    assert body == {"suspended": True}
    status, body = await _call(hs, world["mallory"], "POST", f"{V3}/createRoom", {})
    assert (status, body["errcode"]) == (403, "M_USER_SUSPENDED")
    # Every change is in the admin audit log.
    status, body = await admin.call("GET", "/v1/audit_log?limit=10")
    actions = [e["action"] for e in body.get("entries", body.get("events", []))]
    assert actions.count("user.lock") == 2 and "user.suspend" in actions


async def test_errors_change_nothing(admin, world):
    hs = admin.hs
    other_admin = await make_admin(hs, "root2")
    await hs.register("gone")
    await admin.call("POST", "/v1/deactivate/@gone:localhost", {})
    for flag, key in (("suspend", "suspended"), ("lock", "locked")):
        path = f"{V1}/admin/{flag}/@mallory:localhost"
        # Not an admin: 403 before any lookup, even of a user that does not exist.
        for target in ("@mallory:localhost", "@nobody:localhost"):
            status, body = await _call(
                hs, world["alice"], "PUT", f"{V1}/admin/{flag}/{target}", {key: True}
            )
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
            status, body = await _call(hs, world["alice"], "GET", f"{V1}/admin/{flag}/{target}")
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await hs.request("GET", path)
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
        cases = [
            ("@mallory:localhost", {key: "yes"}, 400, "M_BAD_JSON"),
            ("@mallory:localhost", {}, 400, "M_MISSING_PARAM"),
            ("@mallory:elsewhere.example", {key: True}, 400, "M_INVALID_PARAM"),
            ("@nobody:localhost", {key: True}, 404, "M_NOT_FOUND"),
            ("@gone:localhost", {key: True}, 404, "M_NOT_FOUND"),
            (other_admin.user_id, {key: True}, 403, "M_FORBIDDEN"),
            (admin.user_id, {key: True}, 403, "M_FORBIDDEN"),
        ]
        for target, body_, want_status, errcode in cases:
            status, body = await _call(hs, admin.token, "PUT", f"{V1}/admin/{flag}/{target}", body_)
            assert (status, body["errcode"]) == (want_status, errcode), (target, body_)
        status, body = await _call(hs, admin.token, "GET", f"{V1}/admin/{flag}/@nobody:localhost")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await _call(
            hs, admin.token, "GET", f"{V1}/admin/{flag}/{other_admin.user_id}"
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        # One's own status may be read.
        assert await _call(hs, admin.token, "GET", f"{V1}/admin/{flag}/{admin.user_id}") == (
            200,
            {key: False},
        )
    for user in ("@mallory:localhost", other_admin.user_id, admin.user_id):
        _, details = await admin.call("GET", f"/v2/users/{user}")
        assert (details["suspended"], details["locked"]) == (False, False)
    assert (await _call(hs, world["mallory"], "GET", f"{V3}/account/whoami"))[0] == 200


async def test_capability_for_admins_only(admin, world):
    hs = admin.hs
    status, body = await hs.request("GET", f"{V3}/capabilities", token=admin.token)
    assert body["capabilities"]["m.account_moderation"] == {"suspend": True, "lock": True}
    status, body = await hs.request("GET", f"{V3}/capabilities", token=world["alice"])
    assert status == 200 and "m.account_moderation" not in body["capabilities"]


async def test_advertised(admin):
    status, body = await admin.hs.request("GET", "/_matrix/client/versions")
    assert body["unstable_features"]["uk.timedout.msc4323"] is True


async def test_an_appservice_acting_as_a_suspended_user(server_factory, tmp_path):
    paths = write_registrations(tmp_path, registration(None))
    hs = await server_factory(app_service_config_files=paths)
    admin = await make_admin(hs)
    status, _ = await hs.request(
        "POST",
        f"{V3}/register",
        token=AS_TOKEN,
        json={"type": "m.login.application_service", "username": "bridge_ghost"},
    )
    assert status == 200
    as_ghost = f"{V3}/createRoom?user_id=%40bridge_ghost%3Alocalhost"
    assert (await hs.request("POST", as_ghost, token=AS_TOKEN, json={}))[0] == 200
    path = f"{V1}/admin/suspend/@bridge_ghost:localhost"
    await hs.request("PUT", path, token=admin.token, json={"suspended": True})
    status, body = await hs.request("POST", as_ghost, token=AS_TOKEN, json={})
    assert (status, body["errcode"]) == (403, "M_USER_SUSPENDED")
    await hs.request("PUT", path, token=admin.token, json={"suspended": False})
    assert (await hs.request("POST", as_ghost, token=AS_TOKEN, json={}))[0] == 200
