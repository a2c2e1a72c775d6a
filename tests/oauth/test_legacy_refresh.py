"""The legacy `POST /refresh` and the OAuth server's refresh tokens: an
OAuth client refreshes at the token endpoint (the spec's OAuth 2.0 API), so
/refresh refuses its refresh tokens with 401 M_UNKNOWN_TOKEN and changes
nothing, and a rotated-away one presented there still counts as reuse."""

from __future__ import annotations

from typing import Any

from tests.oauth.conftest import API_SCOPE, DEVICE_SCOPE

REFRESH = "/_matrix/client/v3/refresh"


async def whoami(hs: Any, token: str) -> int:
    status, _ = await hs.request("GET", "/_matrix/client/v3/account/whoami", token=token)
    return status


async def legacy_refresh(hs: Any, refresh_token: str) -> tuple[int, Any]:
    return await hs.request("POST", REFRESH, json={"refresh_token": refresh_token})


async def test_oauth_refresh_token_is_refused_and_left_working(
    element_x: Any, oauth_hs: Any
) -> None:
    user = await oauth_hs.register("rita")
    token, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}RITA")

    for path in (REFRESH, "/_matrix/client/v1/refresh"):
        status, body = await oauth_hs.request(
            "POST", path, json={"refresh_token": token["refresh_token"]}
        )
        assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    # Nothing changed: the access token works and the refresh token still
    # refreshes at the token endpoint, once.
    assert await whoami(oauth_hs, token["access_token"]) == 200
    refreshed = await element_x.oauth.refresh_token(
        element_x.metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert await whoami(oauth_hs, refreshed["access_token"]) == 200

    # The rotated-away refresh token at /refresh is reuse, as at the token
    # endpoint: refused, and the session it belonged to ends.
    status, body = await legacy_refresh(oauth_hs, token["refresh_token"])
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert await whoami(oauth_hs, refreshed["access_token"]) == 401
    status, _ = await legacy_refresh(oauth_hs, refreshed["refresh_token"])
    assert status == 401


async def test_password_sessions_still_refresh_at_the_legacy_endpoint(oauth_hs: Any) -> None:
    await oauth_hs.register("paul", password="pw of paul")
    status, session = await oauth_hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "user": "paul",
            "password": "pw of paul",
            "refresh_token": True,
        },
    )
    assert status == 200 and "refresh_token" in session, session
    status, body = await legacy_refresh(oauth_hs, session["refresh_token"])
    assert status == 200, body
    assert await whoami(oauth_hs, body["access_token"]) == 200
    status, body = await legacy_refresh(oauth_hs, "not-a-token")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
