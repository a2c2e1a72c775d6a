"""Admin API: accounts. Created users can log in; deactivated and locked ones cannot."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import V3, login


async def test_create_user_then_log_in_and_modify(admin):
    status, body = await admin.call(
        "PUT",
        "/v2/users/@carol:localhost",
        {"password": "pw-carol", "displayname": "Carol", "admin": False},
    )
    assert status == 201, body
    assert body["name"] == "@carol:localhost"
    assert body["displayname"] == "Carol"
    assert body["admin"] is False and body["deactivated"] is False
    assert isinstance(body["creation_ts"], int)

    status, session = await login(admin.hs, "carol", "pw-carol")
    assert status == 200, session
    assert session["user_id"] == "@carol:localhost"

    status, body = await admin.call(
        "PUT", "/v2/users/@carol:localhost", {"displayname": "Caroline", "admin": True}
    )
    assert status == 200, body
    assert (body["displayname"], body["admin"]) == ("Caroline", True)
    status, profile = await admin.hs.request("GET", f"{V3}/profile/@carol:localhost")
    assert profile["displayname"] == "Caroline"


async def test_deactivated_user_cannot_log_in_and_leaves_directory(admin):
    hs = admin.hs
    alice = await hs.register("alice", "pw-alice")
    bob = await hs.register("bob", "pw-bob")
    status, room = await hs.request(
        "POST", f"{V3}/createRoom", token=alice["access_token"], json={"preset": "public_chat"}
    )
    assert status == 200
    status, _ = await hs.request("POST", f"{V3}/join/{room['room_id']}", token=bob["access_token"])
    assert status == 200

    async def directory() -> list[str]:
        status, body = await hs.request(
            "POST",
            f"{V3}/user_directory/search",
            token=alice["access_token"],
            json={"search_term": "bob"},
        )
        assert status == 200, body
        return [r["user_id"] for r in body["results"]]

    assert await directory() == ["@bob:localhost"]

    status, body = await admin.call("POST", "/v1/deactivate/@bob:localhost", {"erase": True})
    assert (status, body) == (200, {"id_server_unbind_result": "success"})

    status, body = await login(hs, "bob", "pw-bob")
    assert status == 403 and body["errcode"] == "M_USER_DEACTIVATED"
    status, body = await hs.request("GET", f"{V3}/account/whoami", token=bob["access_token"])
    assert status == 401
    assert await directory() == []
    status, members = await admin.call("GET", f"/v1/rooms/{room['room_id']}/members")
    assert members["members"] == ["@alice:localhost"]
    status, body = await admin.call("GET", "/v2/users/@bob:localhost")
    assert (body["deactivated"], body["erased"]) == (True, True)


async def test_locked_user_gets_user_locked(admin):
    hs = admin.hs
    dave = await hs.register("dave", "pw-dave")
    status, _ = await hs.request("GET", f"{V3}/account/whoami", token=dave["access_token"])
    assert status == 200
    status, body = await admin.call("PUT", "/v2/users/@dave:localhost", {"locked": True})
    assert status == 200 and body["locked"] is True
    status, body = await hs.request("GET", f"{V3}/account/whoami", token=dave["access_token"])
    assert status == 401
    assert body["errcode"] == "M_USER_LOCKED" and body["soft_logout"] is True
    status, body = await login(hs, "dave", "pw-dave")
    assert status == 401 and body["errcode"] == "M_USER_LOCKED"
    await admin.call("PUT", "/v2/users/@dave:localhost", {"locked": False})
    status, _ = await hs.request("GET", f"{V3}/account/whoami", token=dave["access_token"])
    assert status == 200

    # A locked account may still log out, as the spec asks.
    await admin.call("PUT", "/v2/users/@dave:localhost", {"locked": True})
    status, _ = await hs.request("POST", f"{V3}/logout", token=dave["access_token"])
    assert status == 200
    await admin.call("PUT", "/v2/users/@dave:localhost", {"locked": False})
    status, body = await hs.request("GET", f"{V3}/account/whoami", token=dave["access_token"])
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_list_users_filters_and_pages(admin):
    for name in ("ann", "anna", "ben"):
        await admin.hs.register(name)
    await admin.call("POST", "/v1/deactivate/@ben:localhost", {})

    status, body = await admin.call("GET", "/v2/users?limit=2")
    assert status == 200
    assert [u["name"] for u in body["users"]] == ["@ann:localhost", "@anna:localhost"]
    assert body["total"] == 3 and body["next_token"] == "2"
    status, body = await admin.call("GET", "/v2/users?from=2&limit=2")
    assert [u["name"] for u in body["users"]] == ["@root:localhost"]
    assert "next_token" not in body

    status, body = await admin.call("GET", "/v2/users?deactivated=true&dir=b")
    assert [u["name"] for u in body["users"]] == [
        "@root:localhost",
        "@ben:localhost",
        "@anna:localhost",
        "@ann:localhost",
    ]
    status, body = await admin.call("GET", "/v2/users?name=ann")
    assert [u["name"] for u in body["users"]] == ["@ann:localhost", "@anna:localhost"]
    status, body = await admin.call("GET", "/v2/users?admins=true")
    assert [u["name"] for u in body["users"]] == ["@root:localhost"]
    status, body = await admin.call("GET", "/v2/users?order_by=nonsense")
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"


async def test_reset_password_logs_out_and_new_password_works(admin):
    hs = admin.hs
    erin = await hs.register("erin", "old-pw")
    status, _ = await admin.call(
        "POST", "/v1/reset_password/@erin:localhost", {"new_password": "new-pw"}
    )
    assert status == 200
    status, _ = await hs.request("GET", f"{V3}/account/whoami", token=erin["access_token"])
    assert status == 401
    assert (await login(hs, "erin", "old-pw"))[0] == 403
    assert (await login(hs, "erin", "new-pw"))[0] == 200


async def test_whois_devices_and_joined_rooms(admin):
    hs = admin.hs
    fred = await hs.register("fred")
    status, _ = await hs.request(
        "GET",
        f"{V3}/account/whoami",
        token=fred["access_token"],
        headers={"User-Agent": "whois-test/1.0"},
    )
    status, room = await hs.request("POST", f"{V3}/createRoom", token=fred["access_token"], json={})

    status, body = await admin.call("GET", "/v1/whois/@fred:localhost")
    assert status == 200
    (session,) = body["devices"][""]["sessions"]
    (connection,) = session["connections"]
    assert connection["ip"] == "127.0.0.1"
    assert isinstance(connection["last_seen"], int)

    # The client API's whois: for admins, and for the user about themselves.
    path = f"{V3}/admin/whois/@fred:localhost"
    for token in (admin.token, fred["access_token"]):
        status, mine = await hs.request("GET", path, token=token)
        assert (status, mine) == (200, body)
    (connection,) = mine["devices"][""]["sessions"][0]["connections"]
    assert connection["user_agent"] == "whois-test/1.0"
    other = await hs.register("gina")
    status, refused = await hs.request("GET", path, token=other["access_token"])
    assert (status, refused["errcode"]) == (403, "M_FORBIDDEN")
    status, new = await hs.request(
        "GET", f"{V3}/admin/whois/@gina:localhost", token=other["access_token"]
    )
    assert status == 200 and new["user_id"] == "@gina:localhost"

    status, body = await admin.call("GET", "/v1/users/@fred:localhost/joined_rooms")
    assert body == {"joined_rooms": [room["room_id"]], "total": 1}

    device_id = fred["device_id"]
    status, body = await admin.call("GET", "/v2/users/@fred:localhost/devices")
    assert body["total"] == 1 and body["devices"][0]["device_id"] == device_id
    path = f"/v2/users/@fred:localhost/devices/{device_id}"
    status, _ = await admin.call("PUT", path, {"display_name": "Fred's phone"})
    assert status == 200
    status, body = await admin.call("GET", path)
    assert body["display_name"] == "Fred's phone"
    status, _ = await admin.call("DELETE", path)
    assert status == 200
    status, _ = await hs.request("GET", f"{V3}/account/whoami", token=fred["access_token"])
    assert status == 401
    status, body = await admin.call("GET", path)
    assert status == 404


async def test_login_as_user(admin):
    hs = admin.hs
    await hs.register("gina")
    status, body = await admin.call("POST", "/v1/users/@gina:localhost/login", {})
    assert status == 200
    status, who = await hs.request("GET", f"{V3}/account/whoami", token=body["access_token"])
    assert (status, who["user_id"]) == (200, "@gina:localhost")
    status, body = await admin.call("POST", f"/v1/users/{admin.user_id}/login", {})
    assert status == 400


async def test_shadow_banned_messages_are_not_delivered(admin):
    hs = admin.hs
    host = await hs.register("host")
    spammer = await hs.register("spammer")
    status, room = await hs.request(
        "POST", f"{V3}/createRoom", token=host["access_token"], json={"preset": "public_chat"}
    )
    room_id = room["room_id"]
    await hs.request("POST", f"{V3}/join/{room_id}", token=spammer["access_token"])
    status, _ = await admin.call("POST", "/v1/users/@spammer:localhost/shadow_ban")
    assert status == 200
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/1",
        token=spammer["access_token"],
        json={"msgtype": "m.text", "body": "spam"},
    )
    assert status == 200 and body["event_id"].startswith("$")
    status, page = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/messages?dir=b&limit=50", token=host["access_token"]
    )
    assert all(e["event_id"] != body["event_id"] for e in page["chunk"])
    assert not [e for e in page["chunk"] if e["type"] == "m.room.message"]

    # Invites seem to work too, and reach nobody.
    await hs.register("victim")
    status, body = await hs.request(
        "POST",
        f"{V3}/rooms/{room_id}/invite",
        token=spammer["access_token"],
        json={"user_id": "@victim:localhost"},
    )
    assert (status, body) == (200, {})
    status, members = await admin.call("GET", f"/v1/rooms/{room_id}/state")
    assert "@victim:localhost" not in [e.get("state_key") for e in members["state"]]

    status, _ = await admin.call("DELETE", "/v1/users/@spammer:localhost/shadow_ban")
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/2",
        token=spammer["access_token"],
        json={"msgtype": "m.text", "body": "hello"},
    )
    status, page = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/messages?dir=b&limit=50", token=host["access_token"]
    )
    assert [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"] == [
        "hello"
    ]


async def test_ratelimit_override_feeds_the_limiter(server_factory):
    from tests.admin.conftest import make_admin
    from tests.conftest import rate_limits_on

    hs = await server_factory(
        **rate_limits_on(client_writes={"per_second": 0.001, "burst_count": 2})
    )
    admin = await make_admin(hs)
    user = await hs.register("busy")

    async def send(n: int) -> int:
        status, _ = await hs.request(
            "PUT",
            f"{V3}/user/@busy:localhost/account_data/x.{n}",
            token=user["access_token"],
            json={},
        )
        return status

    assert [await send(n) for n in range(3)] == [200, 200, 429]
    status, body = await admin.call(
        "POST",
        "/v1/users/@busy:localhost/override_ratelimit",
        {"messages_per_second": 0, "burst_count": 0},
    )
    assert (status, body) == (200, {"messages_per_second": 0, "burst_count": 0})
    assert [await send(n) for n in range(3, 10)] == [200] * 7
    status, body = await admin.call("GET", "/v1/users/@busy:localhost/override_ratelimit")
    assert body == {"messages_per_second": 0, "burst_count": 0}
    status, _ = await admin.call("DELETE", "/v1/users/@busy:localhost/override_ratelimit")
    assert [await send(n) for n in range(10, 13)] == [200, 200, 429]
    status, body = await admin.call("GET", "/v1/users/@busy:localhost/override_ratelimit")
    assert body == {}


async def test_username_available(admin):
    status, body = await admin.call("GET", "/v1/username_available?username=free")
    assert (status, body) == (200, {"available": True})
    status, body = await admin.call("GET", "/v1/username_available?username=root")
    assert status == 400 and body["errcode"] == "M_USER_IN_USE"


async def test_bad_input_changes_nothing(admin: Any):
    status, body = await admin.call("PUT", "/v2/users/@x:localhost", {"admin": "yes"})
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    status, body = await admin.call("GET", "/v2/users/@x:localhost")
    assert status == 404
    status, body = await admin.call("GET", "/v2/users/@x:elsewhere")
    assert status == 400
