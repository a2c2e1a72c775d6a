"""Admin API: registration tokens are counted down by registrations and expire."""

from __future__ import annotations

import time
from typing import Any

from tests.admin.conftest import V3, Admin


async def register_with_token(hs: Any, username: str, token: str) -> tuple[int, Any]:
    """Registration through UIA: the token stage, then the (dummy-free) completion."""
    status, body = await hs.request(
        "POST", f"{V3}/register", json={"username": username, "password": "pw"}
    )
    assert status == 401, body
    return await hs.request(
        "POST",
        f"{V3}/register",
        json={
            "username": username,
            "password": "pw",
            "auth": {
                "type": "m.login.registration_token",
                "token": token,
                "session": body["session"],
            },
        },
    )


async def token_server(server_factory: Any) -> Any:
    return await server_factory(registration_requires_token=True)


async def test_create_list_get_update_delete(server_factory):
    hs = await token_server(server_factory)
    admin = await make_admin_with_token(hs)
    status, token = await admin.call("POST", "/v1/registration_tokens/new", {"uses_allowed": 2})
    assert status == 200
    assert len(token["token"]) == 16
    assert token == {
        "token": token["token"],
        "uses_allowed": 2,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    status, named = await admin.call(
        "POST", "/v1/registration_tokens/new", {"token": "named", "length": 3}
    )
    assert named["token"] == "named"
    status, short = await admin.call("POST", "/v1/registration_tokens/new", {"length": 5})
    assert len(short["token"]) == 5
    status, body = await admin.call("POST", "/v1/registration_tokens/new", {"token": "named"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await admin.call("POST", "/v1/registration_tokens/new", {"token": "bad token"})
    assert status == 400
    status, body = await admin.call("POST", "/v1/registration_tokens/new", {"expiry_time": 1})
    assert status == 400

    status, body = await admin.call("GET", "/v1/registration_tokens")
    assert len(body["registration_tokens"]) == 3
    status, body = await admin.call("PUT", "/v1/registration_tokens/named", {"uses_allowed": 0})
    assert (body["token"], body["uses_allowed"]) == ("named", 0)
    status, body = await admin.call("GET", "/v1/registration_tokens?valid=false")
    assert [t["token"] for t in body["registration_tokens"]] == ["named"]
    status, body = await admin.call("GET", "/v1/registration_tokens?valid=true")
    assert "named" not in [t["token"] for t in body["registration_tokens"]]

    status, _ = await admin.call("DELETE", "/v1/registration_tokens/named")
    assert status == 200
    status, body = await admin.call("GET", "/v1/registration_tokens/named")
    assert status == 404
    status, body = await admin.call("DELETE", "/v1/registration_tokens/named")
    assert status == 404


async def make_admin_with_token(hs: Any) -> Admin:
    """An admin on a server whose registration needs a token (one made for it)."""
    await hs.pool.execute("INSERT INTO registration_tokens (token) VALUES ('bootstrap')")
    status, body = await register_with_token(hs, "root", "bootstrap")
    assert status == 200, body
    await hs.pool.execute("DELETE FROM registration_tokens WHERE token = 'bootstrap'")
    await hs.pool.execute("UPDATE users SET admin = TRUE WHERE user_id = $1", body["user_id"])
    return Admin(hs, body["access_token"], body["user_id"])


async def test_registrations_count_the_token_down(server_factory):
    hs = await token_server(server_factory)
    admin = await make_admin_with_token(hs)
    await admin.call("POST", "/v1/registration_tokens/new", {"token": "twice", "uses_allowed": 2})

    status, _ = await register_with_token(hs, "first", "twice")
    assert status == 200
    status, token = await admin.call("GET", "/v1/registration_tokens/twice")
    assert (token["pending"], token["completed"]) == (0, 1)

    status, _ = await register_with_token(hs, "second", "twice")
    assert status == 200
    status, token = await admin.call("GET", "/v1/registration_tokens/twice")
    assert (token["pending"], token["completed"]) == (0, 2)

    status, body = await register_with_token(hs, "third", "twice")
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    status, validity = await hs.request(
        "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=twice"
    )
    assert validity == {"valid": False}
    # Allowing one more use lets the next registration through.
    await admin.call("PUT", "/v1/registration_tokens/twice", {"uses_allowed": 3})
    status, _ = await register_with_token(hs, "third", "twice")
    assert status == 200


async def test_expired_token_is_refused(server_factory):
    hs = await token_server(server_factory)
    admin = await make_admin_with_token(hs)
    soon = int(time.time() * 1000) + 60_000
    await admin.call("POST", "/v1/registration_tokens/new", {"token": "soon", "expiry_time": soon})
    status, validity = await hs.request(
        "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=soon"
    )
    assert validity == {"valid": True}
    # Time passes: the expiry is moved into the past behind the API's back.
    await hs.pool.execute("UPDATE registration_tokens SET expiry_time = 1 WHERE token = 'soon'")
    status, body = await register_with_token(hs, "late", "soon")
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    status, body = await admin.call("GET", "/v1/registration_tokens?valid=false")
    assert [t["token"] for t in body["registration_tokens"]] == ["soon"]


async def test_abandoned_registration_releases_its_pending_use(server_factory):
    hs = await token_server(server_factory)
    admin = await make_admin_with_token(hs)
    await admin.call("POST", "/v1/registration_tokens/new", {"token": "once", "uses_allowed": 1})
    # A registration completed the token stage and then stopped (as a client
    # that never finishes a longer flow would): its session holds the token.
    status, body = await hs.request(
        "POST", f"{V3}/register", json={"username": "quitter", "password": "pw"}
    )
    await hs.pool.execute(
        """UPDATE ui_auth_sessions SET completed = '{"m.login.registration_token": "once"}'
           WHERE session_id = $1""",
        body["session"],
    )
    await hs.pool.execute("UPDATE registration_tokens SET pending = 1 WHERE token = 'once'")
    status, token = await admin.call("GET", "/v1/registration_tokens/once")
    assert token["pending"] == 1
    status, body = await register_with_token(hs, "other", "once")
    assert status == 401
    # The session expires: the next registration sweeps it, releasing the token.
    await hs.pool.execute("UPDATE ui_auth_sessions SET created_ts = 0")
    status, body = await register_with_token(hs, "other", "once")
    assert status == 200, body
    status, token = await admin.call("GET", "/v1/registration_tokens/once")
    assert (token["pending"], token["completed"]) == (0, 1)
