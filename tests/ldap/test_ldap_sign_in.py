"""Signing in with an LDAP password, over real HTTP against a real slapd."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.ldap.conftest import ldap_config
from tests.ldap.slapd import PEOPLE, Slapd

V3 = "/_matrix/client/v3"


async def login(hs: RunningServer, user: str, password: str) -> tuple[int, Any]:
    return await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )


async def account_count(hs: RunningServer) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM users")


async def exists(hs: RunningServer, user_id: str) -> bool:
    status, _ = await hs.request("GET", f"{V3}/profile/{user_id}")
    return status == 200


@pytest.fixture
async def ldap_hs(server_factory: Any, slapd: Slapd) -> RunningServer:
    return await server_factory(ldap=ldap_config(slapd))


async def test_first_sign_in_creates_the_account_with_the_directory_name(ldap_hs):
    assert not await exists(ldap_hs, "@alice:localhost")
    status, body = await login(ldap_hs, "alice", "alice-pw")
    assert status == 200, body
    assert body["user_id"] == "@alice:localhost"
    status, profile = await ldap_hs.request("GET", f"{V3}/profile/@alice:localhost")
    assert status == 200 and profile["displayname"] == "Alice Liddell"
    row = await ldap_hs.pool.fetchrow(
        "SELECT * FROM ldap_users WHERE user_id = $1", body["user_id"]
    )
    assert row["dn"] == f"uid=alice,{PEOPLE}" and row["email"] == "alice@example.org"
    # The second sign-in opens the same account, and both sessions work.
    status, again = await login(ldap_hs, "@Alice:localhost", "alice-pw")
    assert status == 200 and again["user_id"] == "@alice:localhost"
    assert again["device_id"] != body["device_id"]
    for token in (body["access_token"], again["access_token"]):
        status, who = await ldap_hs.request("GET", f"{V3}/account/whoami", token=token)
        assert status == 200 and who["user_id"] == "@alice:localhost"


async def test_simultaneous_first_sign_ins_make_one_account(ldap_hs):
    results = await asyncio.gather(*(login(ldap_hs, "bob", "bob-pw") for _ in range(4)))
    assert {(status, body.get("user_id")) for status, body in results} == {(200, "@bob:localhost")}
    count = await ldap_hs.pool.fetchval(
        "SELECT count(*) FROM users WHERE user_id = '@bob:localhost'"
    )
    assert count == 1


async def test_wrong_password_is_refused_and_creates_nothing(ldap_hs):
    before = await account_count(ldap_hs)
    for password in ("wrong", "ALICE-PW", "bob-pw"):
        status, body = await login(ldap_hs, "bob", password if password != "bob-pw" else "x")
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    # An empty password would be an anonymous bind (RFC 4513 5.1.2): never a sign-in.
    status, body = await login(ldap_hs, "bob", "")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    assert await account_count(ldap_hs) == before
    assert not await exists(ldap_hs, "@bob:localhost")


async def test_user_outside_the_filter_is_refused(ldap_hs):
    status, body = await login(ldap_hs, "carol", "carol-pw")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert not await exists(ldap_hs, "@carol:localhost")


async def test_filter_injection_in_the_user_name_is_refused(ldap_hs):
    before = await account_count(ldap_hs)
    for username in [
        "*",
        ")(uid=*",
        "alice)(|(uid=*",
        "admin)(|(uid=*",
        "alice\x00",
        "al*",
        "\\2a",
    ]:
        status, body = await login(ldap_hs, username, "alice-pw")
        assert status in (400, 403), (username, body)
        assert body["errcode"] in ("M_FORBIDDEN", "M_INVALID_USERNAME", "M_BAD_JSON"), (
            username,
            body,
        )
    assert await account_count(ldap_hs) == before


async def test_local_accounts_still_sign_in_beside_the_directory(ldap_hs):
    await ldap_hs.register("erin", "erin-local-pw")
    status, body = await login(ldap_hs, "erin", "erin-local-pw")
    assert status == 200 and body["user_id"] == "@erin:localhost"
    status, body = await login(ldap_hs, "erin", "wrong")
    assert status == 403


async def test_local_passwords_can_be_switched_off(server_factory, slapd):
    hs = await server_factory(ldap=ldap_config(slapd, local_passwords_enabled=False))
    await hs.register("frank", "frank-local-pw")
    status, body = await login(hs, "frank", "frank-local-pw")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await login(hs, "alice", "alice-pw")
    assert status == 200


async def test_directory_user_named_like_a_local_account_signs_in_to_it(server_factory, slapd):
    """As matrix-synapse-ldap3: the directory's dave opens the existing @dave."""
    hs = await server_factory(ldap=ldap_config(slapd))
    await hs.register("dave", "dave-local-pw")
    status, body = await login(hs, "dave", "dave-ldap-pw")
    assert status == 200 and body["user_id"] == "@dave:localhost"
    status, profile = await hs.request("GET", f"{V3}/profile/@dave:localhost")
    assert profile["displayname"] == "dave"
    status, _ = await login(hs, "dave", "dave-local-pw")
    assert status == 200


async def test_no_account_is_created_when_create_users_is_off(server_factory, slapd):
    hs = await server_factory(ldap=ldap_config(slapd, create_users=False))
    before = await account_count(hs)
    status, body = await login(hs, "alice", "alice-pw")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await account_count(hs) == before


async def test_direct_bind_with_a_dn_template(server_factory, slapd):
    config = ldap_config(slapd, bind_template=f"uid={{localpart}},{PEOPLE}")
    del config["bind_dn"], config["bind_password"]
    hs = await server_factory(ldap=config)
    status, body = await login(hs, "bob", "bob-pw")
    assert status == 200 and body["user_id"] == "@bob:localhost"
    status, profile = await hs.request("GET", f"{V3}/profile/@bob:localhost")
    assert profile["displayname"] == "Bob Builder"
    status, body = await login(hs, "bob", "wrong")
    assert status == 403
    # carol binds fine, but her entry is outside the filter.
    status, body = await login(hs, "carol", "carol-pw")
    assert status == 403 and not await exists(hs, "@carol:localhost")


async def test_password_stage_of_user_interactive_auth_takes_the_ldap_password(ldap_hs):
    status, first = await login(ldap_hs, "alice", "alice-pw")
    status, second = await login(ldap_hs, "alice", "alice-pw")
    path = f"{V3}/devices/{second['device_id']}"
    status, challenge = await ldap_hs.request("DELETE", path, token=first["access_token"], json={})
    assert status == 401
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "session": challenge["session"],
    }
    status, body = await ldap_hs.request(
        "DELETE", path, token=first["access_token"], json={"auth": {**auth, "password": "no"}}
    )
    assert status == 401 and body["errcode"] == "M_FORBIDDEN"
    status, body = await ldap_hs.request(
        "DELETE", path, token=first["access_token"], json={"auth": {**auth, "password": "alice-pw"}}
    )
    assert status == 200, body
    status, _ = await ldap_hs.request("GET", f"{V3}/account/whoami", token=second["access_token"])
    assert status == 401


async def test_password_of_a_directory_account_cannot_be_changed_here(ldap_hs):
    status, body = await login(ldap_hs, "alice", "alice-pw")
    token = body["access_token"]
    change = {
        "new_password": "new-pw",
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "alice-pw",
        },
    }
    status, body = await ldap_hs.request("POST", f"{V3}/account/password", token=token, json=change)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert "directory" in body["error"]
    # Others' may still be: the capability stays on.
    status, caps = await ldap_hs.request("GET", f"{V3}/capabilities", token=token)
    assert caps["capabilities"]["m.change_password"] == {"enabled": True}
    status, _ = await login(ldap_hs, "alice", "new-pw")
    assert status == 403
    # A local account beside the directory still can.
    local = await ldap_hs.register("gina", "gina-pw")
    change["auth"] = {**change["auth"], "identifier": {"type": "m.id.user", "user": "gina"}}
    change["auth"]["password"] = "gina-pw"
    status, body = await ldap_hs.request(
        "POST", f"{V3}/account/password", token=local["access_token"], json=change
    )
    assert status == 200, body


async def test_no_password_changes_when_local_passwords_are_off(server_factory, slapd):
    hs = await server_factory(ldap=ldap_config(slapd, local_passwords_enabled=False))
    status, body = await login(hs, "alice", "alice-pw")
    token = body["access_token"]
    status, body = await hs.request(
        "POST",
        f"{V3}/account/password",
        token=token,
        json={"new_password": "x"},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await hs.request("GET", f"{V3}/capabilities", token=token)
    assert body["capabilities"]["m.change_password"] == {"enabled": False}


async def test_a_deactivated_directory_account_stays_closed(ldap_hs):
    status, body = await login(ldap_hs, "bob", "bob-pw")
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "bob"},
        "password": "bob-pw",
    }
    status, _ = await ldap_hs.request(
        "POST", f"{V3}/account/deactivate", token=body["access_token"], json={"auth": auth}
    )
    assert status == 200
    before = await account_count(ldap_hs)
    status, body = await login(ldap_hs, "bob", "bob-pw")
    assert (status, body["errcode"]) == (403, "M_USER_DEACTIVATED")
    assert await account_count(ldap_hs) == before
