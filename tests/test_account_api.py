"""Refresh tokens, password changes, deactivation, account data, filters and
the other account endpoints, over real HTTP."""

from __future__ import annotations

import asyncio

V3 = "/_matrix/client/v3"


def password_auth(user: str, password: str, session: str | None = None) -> dict:
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    if session:
        auth["session"] = session
    return auth


async def whoami_status(hs, token: str) -> tuple[int, dict]:
    return await hs.request("GET", f"{V3}/account/whoami", token=token)


async def test_refresh_tokens(hs):
    status, body = await hs.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "rita",
            "password": "pw",
            "refresh_token": True,
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert status == 200
    assert body["refresh_token"] and body["expires_in_ms"] == 300_000
    first_access, first_refresh = body["access_token"], body["refresh_token"]

    status, new = await hs.request("POST", f"{V3}/refresh", json={"refresh_token": first_refresh})
    assert status == 200 and new["access_token"] != first_access
    assert new["refresh_token"] != first_refresh and new["expires_in_ms"] == 300_000
    # The old access token died with the refresh.
    assert (await whoami_status(hs, first_access))[0] == 401
    # Until the new tokens are used, the old refresh token still works (a lost
    # response must not log the client out) ...
    status, again = await hs.request("POST", f"{V3}/refresh", json={"refresh_token": first_refresh})
    assert status == 200
    # ... and the superseded successor is gone.
    status, _ = await hs.request(
        "POST", f"{V3}/refresh", json={"refresh_token": new["refresh_token"]}
    )
    assert status == 401
    # Using the new access token retires the old refresh token.
    status, who = await whoami_status(hs, again["access_token"])
    assert (status, who["user_id"]) == (200, "@rita:localhost")
    status, body = await hs.request("POST", f"{V3}/refresh", json={"refresh_token": first_refresh})
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    status, body = await hs.request("POST", f"{V3}/refresh", json={"refresh_token": "nonsense"})
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_expired_access_token_is_soft_logout(server_factory):
    hs = await server_factory(refreshable_access_token_lifetime_ms=300)
    status, body = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "sam", "password": "pw", "refresh_token": True},
    )
    assert status == 403  # no such user yet
    await hs.register("sam", "pw", inhibit_login=True)
    status, body = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "sam", "password": "pw", "refresh_token": True},
    )
    assert status == 200 and body["expires_in_ms"] == 300
    await asyncio.sleep(0.4)
    status, err = await whoami_status(hs, body["access_token"])
    assert (status, err["errcode"], err["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", True)
    status, fresh = await hs.request(
        "POST", f"{V3}/refresh", json={"refresh_token": body["refresh_token"]}
    )
    assert status == 200
    assert (await whoami_status(hs, fresh["access_token"]))[0] == 200


async def test_password_change_requires_uia_and_logs_out_other_devices(hs):
    reg = await hs.register("paula", "old-pw")
    status, other = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "paula", "password": "old-pw"},
    )
    token = reg["access_token"]
    status, challenge = await hs.request(
        "POST", f"{V3}/account/password", token=token, json={"new_password": "new-pw"}
    )
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}]
    status, body = await hs.request(
        "POST",
        f"{V3}/account/password",
        token=token,
        json={
            "new_password": "new-pw",
            "auth": password_auth("paula", "nope", challenge["session"]),
        },
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    status, _ = await hs.request(
        "POST",
        f"{V3}/account/password",
        token=token,
        json={
            "new_password": "new-pw",
            "auth": password_auth("paula", "old-pw", challenge["session"]),
        },
    )
    assert status == 200
    assert (await whoami_status(hs, token))[0] == 200
    assert (await whoami_status(hs, other["access_token"]))[0] == 401
    status, _ = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "paula", "password": "old-pw"},
    )
    assert status == 403
    status, _ = await hs.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "paula", "password": "new-pw"},
    )
    assert status == 200


async def test_uia_session_cannot_authorise_another_request(hs):
    reg = await hs.register("uma", "pw")
    token = reg["access_token"]
    status, challenge = await hs.request("POST", f"{V3}/account/deactivate", token=token, json={})
    assert status == 401
    status, body = await hs.request(
        "POST",
        f"{V3}/account/password",
        token=token,
        json={"new_password": "x", "auth": password_auth("uma", "pw", challenge["session"])},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_uia_password_for_another_account_is_refused(hs):
    reg = await hs.register("victor", "pw")
    await hs.register("wendy", "pw2", inhibit_login=True)
    status, body = await hs.request(
        "POST",
        f"{V3}/account/deactivate",
        token=reg["access_token"],
        json={"auth": password_auth("wendy", "pw2")},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await whoami_status(hs, reg["access_token"]))[0] == 200


async def test_deactivate(hs):
    reg = await hs.register("xena", "pw")
    await hs.request(
        "PUT",
        f"{V3}/profile/@xena:localhost/displayname",
        token=reg["access_token"],
        json={"displayname": "X"},
    )
    status, body = await hs.request(
        "POST",
        f"{V3}/account/deactivate",
        token=reg["access_token"],
        json={"auth": password_auth("xena", "pw")},
    )
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    status, body = await whoami_status(hs, reg["access_token"])
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = await hs.request(
        "POST", f"{V3}/login", json={"type": "m.login.password", "user": "xena", "password": "pw"}
    )
    assert status == 403
    status, body = await hs.request("GET", f"{V3}/profile/@xena:localhost")
    assert status == 404
    # The name stays taken.
    status, body = await hs.request("GET", f"{V3}/register/available?username=xena")
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


async def test_account_data_global_and_per_room(hs):
    yve = await hs.register("yve")
    zed = await hs.register("zed")
    token = yve["access_token"]
    path = f"{V3}/user/@yve:localhost/account_data/org.example.settings"
    status, body = await hs.request("GET", path, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert (await hs.request("PUT", path, token=token, json={"theme": "dark"}))[0] == 200
    assert await hs.request("GET", path, token=token) == (200, {"theme": "dark"})
    assert (await hs.request("PUT", path, token=token, json={"theme": "light"}))[0] == 200
    assert await hs.request("GET", path, token=token) == (200, {"theme": "light"})

    room_path = f"{V3}/user/@yve:localhost/rooms/!room:localhost/account_data/m.tag"
    assert (await hs.request("PUT", room_path, token=token, json={"tags": {"u.work": {}}}))[
        0
    ] == 200
    assert await hs.request("GET", room_path, token=token) == (200, {"tags": {"u.work": {}}})
    other_room = f"{V3}/user/@yve:localhost/rooms/!other:localhost/account_data/m.tag"
    assert (await hs.request("GET", other_room, token=token))[0] == 404

    status, body = await hs.request("GET", path, token=zed["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hs.request("PUT", path, token=zed["access_token"], json={"theme": "evil"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await hs.request("GET", path, token=token) == (200, {"theme": "light"})

    status, body = await hs.request("PUT", path, token=token, json=["not", "an", "object"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await hs.request(
        "PUT", f"{V3}/user/@yve:localhost/account_data/m.push_rules", token=token, json={}
    )
    assert (status, body["errcode"]) == (405, "M_BAD_JSON")


async def test_filters(hs):
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    definition = {
        "room": {"timeline": {"limit": 10, "types": ["m.room.message"]}},
        "presence": {"not_types": ["*"]},
    }
    status, body = await hs.request(
        "POST", f"{V3}/user/@alice:localhost/filter", token=alice["access_token"], json=definition
    )
    assert status == 200
    filter_id = body["filter_id"]
    assert isinstance(filter_id, str)
    status, second = await hs.request(
        "POST", f"{V3}/user/@alice:localhost/filter", token=alice["access_token"], json={}
    )
    assert second["filter_id"] != filter_id
    assert await hs.request(
        "GET", f"{V3}/user/@alice:localhost/filter/{filter_id}", token=alice["access_token"]
    ) == (200, definition)
    status, body = await hs.request(
        "GET", f"{V3}/user/@alice:localhost/filter/{filter_id}", token=bob["access_token"]
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hs.request(
        "GET", f"{V3}/user/@alice:localhost/filter/999", token=alice["access_token"]
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await hs.request(
        "POST",
        f"{V3}/user/@alice:localhost/filter",
        token=alice["access_token"],
        json={"room": {"timeline": {"limit": "ten"}}},
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_registration_token_flow(server_factory):
    hs = await server_factory(registration_requires_token=True)
    from storage.uia import RegistrationTokenStore

    await RegistrationTokenStore(hs.pool).create("letmein", uses_allowed=1)
    status, body = await hs.request(
        "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein"
    )
    assert (status, body) == (200, {"valid": True})
    status, challenge = await hs.request(
        "POST", f"{V3}/register", json={"username": "t1", "password": "pw"}
    )
    assert status == 401
    assert challenge["flows"] == [{"stages": ["m.login.registration_token"]}]
    status, body = await hs.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "t1",
            "password": "pw",
            "auth": {"type": "m.login.dummy", "session": challenge["session"]},
        },
    )
    # Dummy is not offered when a token is required.
    assert (status, body["errcode"], body["session"]) == (
        401,
        "M_UNRECOGNIZED",
        challenge["session"],
    )
    status, body = await hs.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "t1",
            "password": "pw",
            "auth": {
                "type": "m.login.registration_token",
                "token": "wrong",
                "session": challenge["session"],
            },
        },
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    status, body = await hs.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "t1",
            "password": "pw",
            "auth": {
                "type": "m.login.registration_token",
                "token": "letmein",
                "session": challenge["session"],
            },
        },
    )
    assert (status, body["user_id"]) == (200, "@t1:localhost")
    # The token allowed one use only.
    status, body = await hs.request(
        "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein"
    )
    assert body == {"valid": False}


async def test_registration_disabled_and_guests(server_factory):
    hs = await server_factory(enable_registration=False)
    status, body = await hs.request(
        "POST", f"{V3}/register", json={"username": "a", "password": "b"}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hs.request("POST", f"{V3}/register?kind=guest", json={})
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_discovery_endpoints(hs):
    status, body = await hs.request("GET", "/.well-known/matrix/client")
    assert status == 200 and body["m.homeserver"]["base_url"].startswith("http")
    status, body = await hs.request("GET", "/.well-known/matrix/server")
    assert status == 200 and body["m.server"].startswith("localhost:")
    reg = await hs.register("cap")
    status, body = await hs.request("GET", f"{V3}/capabilities", token=reg["access_token"])
    caps = body["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.room_versions"]["default"] == "12"
    assert set(caps["m.room_versions"]["available"]) == {str(v) for v in range(1, 13)}
    assert caps["m.set_displayname"]["enabled"] and caps["m.set_avatar_url"]["enabled"]
    assert caps["m.3pid_changes"] == {"enabled": False}
    status, body = await hs.request("GET", f"{V3}/login")
    assert body == {"flows": [{"type": "m.login.password"}]}
    status, body = await hs.request("GET", f"{V3}/account/3pid", token=reg["access_token"])
    assert body == {"threepids": []}


async def test_push_rules_and_openid(hs):
    reg = await hs.register("pia")
    token = reg["access_token"]
    status, rules = await hs.request("GET", f"{V3}/pushrules/", token=token)
    assert status == 200
    override_ids = [r["rule_id"] for r in rules["global"]["override"]]
    assert override_ids[0] == ".m.rule.master"
    assert ".m.rule.invite_for_me" in override_ids
    # Synapse still serves the body-based mention rules; clients rely on them.
    assert ".m.rule.contains_display_name" in override_ids
    assert [r["rule_id"] for r in rules["global"]["underride"]][-1] == ".m.rule.encrypted"

    status, body = await hs.request(
        "POST", f"{V3}/user/@pia:localhost/openid/request_token", token=token, json={}
    )
    assert status == 200 and body["token_type"] == "Bearer"
    assert body["matrix_server_name"] == "localhost" and body["expires_in"] == 3600
    status, body = await hs.request(
        "POST", f"{V3}/user/@other:localhost/openid/request_token", token=token, json={}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_openid_userinfo_on_both_listeners(hs):
    reg = await hs.register("olga")
    status, issued = await hs.request(
        "POST", f"{V3}/user/@olga:localhost/openid/request_token", token=reg["access_token"]
    )
    assert status == 200
    userinfo = "/_matrix/federation/v1/openid/userinfo"
    federation = f"https://127.0.0.1:{hs.server.federation_port}{userinfo}"

    async def ask(query: str) -> list[tuple[int, dict]]:
        answers = [await hs.request("GET", userinfo + query)]
        async with hs.http.get(federation + query, ssl=False) as resp:
            answers.append((resp.status, await resp.json()))
        return answers

    token = issued["access_token"]
    assert await ask(f"?access_token={token}") == [(200, {"sub": "@olga:localhost"})] * 2
    for status, body in await ask("?access_token=not-a-token"):
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    for status, body in await ask(""):
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    # The client access token is not an OpenID token.
    for status, body in await ask(f"?access_token={reg['access_token']}"):
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_extended_profile_fields(hs):
    reg = await hs.register("quinn")
    token = reg["access_token"]
    base = f"{V3}/profile/@quinn:localhost"
    assert (await hs.request("PUT", f"{base}/m.tz", token=token, json={"m.tz": "Europe/Paris"}))[
        0
    ] == 200
    assert await hs.request("GET", f"{base}/m.tz") == (200, {"m.tz": "Europe/Paris"})
    status, profile = await hs.request("GET", base)
    assert profile == {"displayname": "quinn", "m.tz": "Europe/Paris"}
    assert (await hs.request("DELETE", f"{base}/m.tz", token=token))[0] == 200
    assert (await hs.request("GET", f"{base}/m.tz"))[0] == 404
    # An unset avatar is null, as Synapse answers; unknown users stay 404.
    assert await hs.request("GET", f"{base}/avatar_url") == (200, {"avatar_url": None})
    assert (await hs.request("GET", f"{V3}/profile/@nobody:localhost/avatar_url"))[0] == 404
    status, body = await hs.request(
        "PUT", f"{base}/displayname", token=token, json={"displayname": 5}
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
