"""POST /register across several requests of one UIA session: the first
request's parameters are kept, a retry after success gets the same account,
and inhibit_login means no device at all."""

from __future__ import annotations

from storage.database import now_ms
from storage.uia import RegistrationTokenStore, UiaStore

V3 = "/_matrix/client/v3"
DUMMY = {"type": "m.login.dummy"}


async def start(hs, **params) -> str:
    """Send the parameters without auth; return the session of the 401."""
    status, body = await hs.request("POST", f"{V3}/register", json=params)
    assert status == 401, body
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert body["completed"] == []
    return body["session"]


async def finish(hs, session: str, **params) -> tuple[int, dict]:
    return await hs.request(
        "POST", f"{V3}/register", json={**params, "auth": {**DUMMY, "session": session}}
    )


async def login(hs, user: str, password: str) -> int:
    status, _ = await hs.request(
        "POST", f"{V3}/login", json={"type": "m.login.password", "user": user, "password": password}
    )
    return status


async def test_first_request_parameters_are_remembered(hs):
    session = await start(
        hs,
        username="Remy",
        password="first-pw",
        device_id="xyzzy",
        initial_device_display_name="Remy's phone",
    )
    status, body = await finish(hs, session)
    assert status == 200, body
    assert body["user_id"] == "@remy:localhost" and body["device_id"] == "xyzzy"
    status, device = await hs.request("GET", f"{V3}/devices/xyzzy", token=body["access_token"])
    assert (status, device["display_name"]) == (200, "Remy's phone")
    # The password of the first request is the account's.
    assert await login(hs, "remy", "first-pw") == 200


async def test_later_parameters_replace_earlier_ones_but_not_the_password(hs):
    # As Synapse (and as matrix-js-sdk relies on): the latest request that
    # carries parameters counts; the password is hashed once, from the first.
    session = await start(hs, username="una", password="pw-one")
    status, body = await finish(
        hs, session, username="ursula", password="pw-two", initial_device_display_name="Laptop"
    )
    assert (status, body["user_id"]) == (200, "@ursula:localhost")
    status, device = await hs.request(
        "GET", f"{V3}/devices/{body['device_id']}", token=body["access_token"]
    )
    assert device["display_name"] == "Laptop"
    assert await login(hs, "ursula", "pw-one") == 200
    assert await login(hs, "ursula", "pw-two") == 403
    status, _ = await hs.request("GET", f"{V3}/profile/@una:localhost")
    assert status == 404


async def test_parameters_may_come_after_an_empty_first_request(hs):
    session = await start(hs)
    status, body = await finish(hs, session, username="late", password="pw")
    assert (status, body["user_id"]) == (200, "@late:localhost")
    assert await login(hs, "late", "pw") == 200


async def test_retry_with_a_completed_session_returns_the_same_account(hs):
    session = await start(hs, username="ida", password="pw")
    status, first = await finish(hs, session, username="ida", password="pw")
    assert status == 200
    status, again = await finish(hs, session, username="ida", password="pw")
    assert status == 200, again
    assert again["user_id"] == first["user_id"] == "@ida:localhost"
    # Logged in again: both tokens work.
    for token in (first["access_token"], again["access_token"]):
        status, who = await hs.request("GET", f"{V3}/account/whoami", token=token)
        assert (status, who["user_id"]) == (200, "@ida:localhost")


async def test_retry_without_username_returns_the_same_generated_account(hs):
    session = await start(hs, password="pw")
    status, first = await finish(hs, session)
    assert status == 200
    status, again = await finish(hs, session, password="pw")
    assert (status, again["user_id"]) == (200, first["user_id"])
    status, _ = await hs.request("GET", f"{V3}/account/whoami", token=again["access_token"])
    assert status == 200


async def test_inhibit_login_gives_no_device(hs):
    session = await start(hs, username="quiet", password="pw", inhibit_login=True)
    status, body = await finish(hs, session)
    assert status == 200
    assert body == {"user_id": "@quiet:localhost", "home_server": "localhost"}
    # No device was made: the first login creates the only one.
    status, logged_in = await hs.request(
        "POST", f"{V3}/login", json={"type": "m.login.password", "user": "quiet", "password": "pw"}
    )
    assert status == 200
    status, devices = await hs.request("GET", f"{V3}/devices", token=logged_in["access_token"])
    assert [d["device_id"] for d in devices["devices"]] == [logged_in["device_id"]]


async def test_taken_name_is_refused_before_auth_and_session_is_unchanged(hs):
    await hs.register("taken")
    status, body = await hs.request(
        "POST", f"{V3}/register", json={"username": "taken", "password": "pw"}
    )
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    status, body = await finish(hs, "no-such-session", username="fresh")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    status, _ = await hs.request("GET", f"{V3}/profile/@fresh:localhost")
    assert status == 404


async def test_a_session_of_another_operation_cannot_register(hs):
    reg = await hs.register("owner", "pw")
    status, challenge = await hs.request(
        "POST", f"{V3}/account/deactivate", token=reg["access_token"], json={}
    )
    assert status == 401
    status, body = await finish(hs, challenge["session"], username="sneaky", password="pw")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_failed_password_stage_lists_completed_stages(hs):
    reg = await hs.register("dana", "pw")
    status, body = await hs.request(
        "POST",
        f"{V3}/account/deactivate",
        token=reg["access_token"],
        json={
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": reg["user_id"]},
                "password": "wrong",
            }
        },
    )
    assert status == 401
    assert body["errcode"] == "M_FORBIDDEN"
    assert body["completed"] == [] and body["flows"] and "params" in body and body["session"]
    status, _ = await hs.request("GET", f"{V3}/account/whoami", token=reg["access_token"])
    assert status == 200


async def test_a_retry_and_the_session_expiring_count_the_token_once(server_factory):
    hs = await server_factory(registration_requires_token=True)
    await RegistrationTokenStore(hs.pool).create("twice", uses_allowed=2)
    status, challenge = await hs.request(
        "POST", f"{V3}/register", json={"username": "tom", "password": "pw"}
    )
    assert status == 401
    auth = {"type": "m.login.registration_token", "token": "twice"}
    for _ in range(2):
        status, body = await hs.request(
            "POST",
            f"{V3}/register",
            json={"auth": {**auth, "session": challenge["session"]}},
        )
        assert (status, body["user_id"]) == (200, "@tom:localhost")
    token_use = "SELECT pending, completed FROM registration_tokens WHERE token = 'twice'"
    assert tuple(await hs.pool.fetchrow(token_use)) == (0, 1)
    # When the kept session expires, the token's use is not given back.
    await UiaStore(hs.pool).delete_sessions_before(now_ms() + 3_600_000)
    assert tuple(await hs.pool.fetchrow(token_use)) == (0, 1)
    status, body = await hs.request(
        "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=twice"
    )
    assert body == {"valid": True}


async def test_a_name_ending_in_a_newline_is_invalid(hs):
    status, body = await hs.request(
        "POST",
        f"{V3}/register",
        json={"username": "newline\n", "password": "pw", "auth": DUMMY},
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")
