"""OpenID Connect Back-Channel Logout 1.0: the mock provider cannot send one,
so the test signs the logout token itself with the provider's own key (as
the provider would) and posts it to the server."""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from tests.sso.conftest import MOCK_CLIENT_ID, mock_provider_config
from tests.sso.providers import BACKCHANNEL_EVENT, MockProvider
from tests.sso.test_legacy_sso import new_sub, set_claims, sso_login_token, token_login

LOGOUT_PATH = "/_homeserver/upstream/mock/backchannel_logout"


async def post_logout(hs: Any, token: str) -> tuple[int, Any]:
    return await hs.request(
        "POST",
        LOGOUT_PATH,
        data=f"logout_token={token}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def whoami(hs: Any, access_token: str) -> int:
    status, _ = await hs.request("GET", "/_matrix/client/v3/account/whoami", token=access_token)
    return status


async def signed_in(hs: Any, provider: MockProvider, browser_factory: Any, sub: str) -> dict:
    token = await sso_login_token(hs, browser_factory(hs.url, provider.url), sub)
    status, session = await token_login(hs, token)
    assert status == 200
    return session


async def test_logout_token_ends_the_subjects_devices_at_once(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub, other = new_sub(), new_sub()
    await set_claims(mock_provider, sub, preferred_username="bc" + secrets.token_hex(2))
    await set_claims(mock_provider, other, preferred_username="keep" + secrets.token_hex(2))
    first = await signed_in(hs, mock_provider, browser_factory, sub)
    second = await signed_in(hs, mock_provider, browser_factory, sub)
    bystander = await signed_in(hs, mock_provider, browser_factory, other)
    for session in (first, second, bystander):
        assert await whoami(hs, session["access_token"]) == 200
    assert (
        await hs.pool.fetchval(
            "SELECT count(*) FROM browser_sessions WHERE user_id = $1", first["user_id"]
        )
        == 2
    )

    status, body = await post_logout(hs, mock_provider.logout_token(MOCK_CLIENT_ID, sub=sub))
    assert status == 200, body
    assert await whoami(hs, first["access_token"]) == 401
    assert await whoami(hs, second["access_token"]) == 401
    assert await whoami(hs, bystander["access_token"]) == 200
    assert (
        await hs.pool.fetchval(
            "SELECT count(*) FROM browser_sessions WHERE user_id = $1", first["user_id"]
        )
        == 0
    )
    # The account itself stays: signing in again works.
    again = await signed_in(hs, mock_provider, browser_factory, sub)
    assert again["user_id"] == first["user_id"]


async def test_bad_logout_tokens_are_refused_and_end_nothing(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    await set_claims(mock_provider, sub, preferred_username="bad" + secrets.token_hex(2))
    session = await signed_in(hs, mock_provider, browser_factory, sub)
    now = int(time.time())
    stranger_key = RSAKey.generate_key(2048, {"kid": mock_provider.key.kid})
    forged = jwt.encode(
        {"alg": "RS256", "kid": mock_provider.key.kid},
        {
            "iss": mock_provider.issuer,
            "aud": MOCK_CLIENT_ID,
            "iat": now,
            "sub": sub,
            "events": {BACKCHANNEL_EVENT: {}},
        },
        stranger_key,
    )
    unsigned = jwt.encode(
        {"alg": "HS256"},
        {"iss": mock_provider.issuer, "aud": MOCK_CLIENT_ID, "iat": now, "sub": sub},
        OctKey.generate_key(256),
    )
    bad_tokens = {
        "forged signature": forged,
        "symmetric algorithm": unsigned,
        "not a JWT": "hello",
        "wrong audience": mock_provider.logout_token("another-client", sub=sub),
        "wrong issuer": mock_provider.logout_token(
            MOCK_CLIENT_ID, sub=sub, iss="https://x.example"
        ),
        "with a nonce": mock_provider.logout_token(MOCK_CLIENT_ID, sub=sub, nonce="n"),
        "no event": mock_provider.logout_token(MOCK_CLIENT_ID, sub=sub, events={"x": {}}),
        "no sub or sid": mock_provider.logout_token(MOCK_CLIENT_ID),
        "issued in the future": mock_provider.logout_token(MOCK_CLIENT_ID, sub=sub, iat=now + 3600),
        "expired": mock_provider.logout_token(MOCK_CLIENT_ID, sub=sub, exp=now - 3600),
    }
    for name, token in bad_tokens.items():
        status, body = await post_logout(hs, token)
        assert status == 400 and body["error"] == "invalid_request", name
        assert await whoami(hs, session["access_token"]) == 200, name
    status, body = await hs.request("POST", LOGOUT_PATH, data=b"", headers={})
    assert status == 400 and body["error"] == "invalid_request"
    status, body = await hs.request(
        "POST", "/_homeserver/upstream/nope/backchannel_logout", data=b"logout_token=x"
    )
    assert status == 404
    assert await whoami(hs, session["access_token"]) == 200
