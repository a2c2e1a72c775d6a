"""Guest accounts over real HTTP: registration, what guests may call, joining
rooms by m.room.guest_access, leaving when it is revoked, and the upgrade."""

from __future__ import annotations

from typing import Any

import pytest

V3 = "/_matrix/client/v3"


@pytest.fixture
async def ghs(server_factory: Any) -> Any:
    return await server_factory(allow_guest_access=True)


async def register_guest(hs: Any, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, guest = await hs.request("POST", f"{V3}/register?kind=guest", json=body or {})
    assert status == 200, guest
    return guest


async def create_room(hs: Any, token: str, **body: Any) -> str:
    status, created = await hs.request("POST", f"{V3}/createRoom", token=token, json=body)
    assert status == 200, created
    return created["room_id"]


async def set_guest_access(hs: Any, token: str, room_id: str, value: str) -> None:
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/state/m.room.guest_access",
        token=token,
        json={"guest_access": value},
    )
    assert status == 200, body


async def membership(hs: Any, token: str, room_id: str, user_id: str) -> dict[str, Any] | None:
    status, event = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/state/m.room.member/{user_id}?format=event", token=token
    )
    return event if status == 200 else None


async def test_guest_registration_ignores_auth_and_gives_a_numeric_guest(ghs):
    guest = await register_guest(
        ghs, {"username": "wanted", "auth": {"type": "m.login.password", "password": "x"}}
    )
    localpart, _, server = guest["user_id"][1:].partition(":")
    assert localpart.isdigit() and server == "localhost"
    assert guest["access_token"] and guest["device_id"]
    status, me = await ghs.request("GET", f"{V3}/account/whoami", token=guest["access_token"])
    assert status == 200
    assert me == {"user_id": guest["user_id"], "device_id": guest["device_id"], "is_guest": True}
    other = await register_guest(ghs)
    assert other["user_id"] != guest["user_id"]


async def test_guest_registration_is_off_by_default(hs):
    status, body = await hs.request("POST", f"{V3}/register?kind=guest", json={})
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    assert await hs.pool.fetchval("SELECT count(*) FROM users WHERE is_guest") == 0


async def test_guests_need_no_open_registration(server_factory):
    hs = await server_factory(allow_guest_access=True, enable_registration=False)
    guest = await register_guest(hs)
    assert guest["user_id"].startswith("@")


async def test_guests_get_only_the_endpoints_the_spec_allows(ghs):
    guest = await register_guest(ghs)
    token, user_id = guest["access_token"], guest["user_id"]
    forbidden = [
        ("POST", f"{V3}/createRoom", {}),
        ("PUT", f"{V3}/profile/{user_id}/avatar_url", {"avatar_url": "mxc://localhost/a"}),
        ("GET", f"{V3}/pushrules/", None),
        ("POST", f"{V3}/user/{user_id}/filter", {}),
        ("PUT", f"{V3}/user/{user_id}/account_data/m.x", {"a": 1}),
    ]
    for method, path, body in forbidden:
        status, error = await ghs.request(method, path, token=token, json=body)
        assert (status, error["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), path
    # Refused requests changed nothing.
    assert await ghs.pool.fetchval("SELECT count(*) FROM rooms") == 0
    status, profile = await ghs.request("GET", f"{V3}/profile/{user_id}")
    assert "avatar_url" not in profile

    status, _ = await ghs.request(
        "PUT", f"{V3}/profile/{user_id}/displayname", token=token, json={"displayname": "Kim"}
    )
    assert status == 200
    status, profile = await ghs.request("GET", f"{V3}/profile/{user_id}/displayname")
    assert profile == {"displayname": "Kim"}
    status, devices = await ghs.request("GET", f"{V3}/devices", token=token)
    assert status == 200 and [d["device_id"] for d in devices["devices"]] == [guest["device_id"]]
    status, synced = await ghs.request("GET", f"{V3}/sync?timeout=0", token=token)
    assert status == 200 and "next_batch" in synced


async def test_guests_join_only_rooms_that_admit_them(ghs):
    owner = await ghs.register("owner")
    guest = await register_guest(ghs)
    closed = await create_room(ghs, owner["access_token"], preset="public_chat")
    status, error = await ghs.request(
        "POST", f"{V3}/rooms/{closed}/join", token=guest["access_token"], json={}
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    assert await membership(ghs, owner["access_token"], closed, guest["user_id"]) is None

    await set_guest_access(ghs, owner["access_token"], closed, "can_join")
    status, _ = await ghs.request(
        "POST", f"{V3}/join/{closed}", token=guest["access_token"], json={}
    )
    assert status == 200
    status, sent = await ghs.request(
        "PUT",
        f"{V3}/rooms/{closed}/send/m.room.message/t1",
        token=guest["access_token"],
        json={"msgtype": "m.text", "body": "hi"},
    )
    assert status == 200, sent
    status, synced = await ghs.request("GET", f"{V3}/sync?timeout=0", token=guest["access_token"])
    timeline = synced["rooms"]["join"][closed]["timeline"]["events"]
    assert timeline[-1]["event_id"] == sent["event_id"]

    # Guests may not invite, kick or ban, whatever their power.
    status, error = await ghs.request(
        "POST",
        f"{V3}/rooms/{closed}/invite",
        token=guest["access_token"],
        json={"user_id": owner["user_id"]},
    )
    assert (status, error["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_guests_leave_when_guest_access_is_revoked(ghs):
    owner = await ghs.register("owner")
    member = await ghs.register("member")
    guest = await register_guest(ghs)
    room_id = await create_room(ghs, owner["access_token"], preset="public_chat")
    await set_guest_access(ghs, owner["access_token"], room_id, "can_join")
    for joiner in (member, guest):
        status, _ = await ghs.request(
            "POST", f"{V3}/rooms/{room_id}/join", token=joiner["access_token"], json={}
        )
        assert status == 200

    await set_guest_access(ghs, owner["access_token"], room_id, "forbidden")

    left = await membership(ghs, owner["access_token"], room_id, guest["user_id"])
    assert left is not None and left["content"]["membership"] == "leave"
    # The guest left by itself: no power level was needed.
    assert left["sender"] == guest["user_id"]
    stayed = await membership(ghs, owner["access_token"], room_id, member["user_id"])
    assert stayed is not None and stayed["content"]["membership"] == "join"
    status, error = await ghs.request(
        "POST", f"{V3}/rooms/{room_id}/join", token=guest["access_token"], json={}
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_guest_upgrades_to_a_full_account_with_the_same_user_id(ghs):
    guest = await register_guest(ghs)
    localpart = guest["user_id"][1:].partition(":")[0]
    body = {
        "username": localpart,
        "password": "s3cret",
        "guest_access_token": guest["access_token"],
    }
    status, challenge = await ghs.request("POST", f"{V3}/register", json=body)
    assert status == 401 and challenge["flows"]
    status, upgraded = await ghs.request(
        "POST", f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy"}}
    )
    assert status == 200, upgraded
    assert upgraded["user_id"] == guest["user_id"]

    for token in (upgraded["access_token"], guest["access_token"]):
        status, me = await ghs.request("GET", f"{V3}/account/whoami", token=token)
        assert (status, me["is_guest"]) == (200, False)
    room_id = await create_room(ghs, upgraded["access_token"])
    assert room_id.startswith("!")
    status, login = await ghs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": localpart, "password": "s3cret"},
    )
    assert status == 200 and login["user_id"] == guest["user_id"]
    # Once upgraded, the token upgrades nothing any more.
    status, error = await ghs.request(
        "POST", f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy"}}
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_guest_cannot_upgrade_another_account(ghs):
    first = await register_guest(ghs)
    second = await register_guest(ghs)
    user = await ghs.register("someone")
    first_localpart = first["user_id"][1:].partition(":")[0]
    for token in (second["access_token"], user["access_token"], "not-a-token"):
        status, error = await ghs.request(
            "POST",
            f"{V3}/register",
            json={
                "username": first_localpart,
                "password": "pw",
                "guest_access_token": token,
                "auth": {"type": "m.login.dummy"},
            },
        )
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    status, me = await ghs.request("GET", f"{V3}/account/whoami", token=first["access_token"])
    assert me["is_guest"] is True
    status, me = await ghs.request("GET", f"{V3}/account/whoami", token=second["access_token"])
    assert me["is_guest"] is True
