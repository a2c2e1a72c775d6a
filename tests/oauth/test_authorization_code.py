"""The authorization code grant as Element X walks it, and the tokens it gets:
accepted everywhere, refreshed with rotation, revoked like /logout."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibError
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oauth.conftest import API_SCOPE, DEVICE_SCOPE, query_of

UNSTABLE_API = "urn:matrix:org.matrix.msc2967.client:api:*"
UNSTABLE_DEVICE = "urn:matrix:org.matrix.msc2967.client:device:"


async def whoami(hs: Any, token: str) -> tuple[int, Any]:
    return await hs.request("GET", "/_matrix/client/v3/account/whoami", token=token)


async def test_sign_in_gives_tokens_every_endpoint_accepts(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("alice")
    token, redirect = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}PHONE1")
    assert redirect.startswith("io.element:/callback?")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] > 0 and token["refresh_token"]
    assert token["scope"] == f"{API_SCOPE} {DEVICE_SCOPE}PHONE1"

    status, body = await whoami(oauth_hs, token["access_token"])
    assert (status, body["user_id"], body["device_id"]) == (200, user["user_id"], "PHONE1")
    status, body = await oauth_hs.request(
        "GET", "/_matrix/client/v3/sync?timeout=0", token=token["access_token"]
    )
    assert status == 200 and "next_batch" in body
    # The device shows in the device list under the client's name.
    status, body = await oauth_hs.request(
        "GET", "/_matrix/client/v3/devices/PHONE1", token=token["access_token"]
    )
    assert body["display_name"] == "Element X"
    # Only digests are stored.
    digest = hashlib.sha256(token["access_token"].encode()).digest()
    assert await oauth_hs.pool.fetchval(
        "SELECT count(*) FROM access_tokens WHERE token_hash = $1", digest
    )
    assert not await oauth_hs.pool.fetchval(
        "SELECT count(*) FROM access_tokens WHERE token_hash = $1", token["access_token"].encode()
    )
    # /logout ends it like any session.
    status, _ = await oauth_hs.request(
        "POST", "/_matrix/client/v3/logout", token=token["access_token"]
    )
    assert status == 200
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 401


async def test_device_id_is_generated_and_unstable_scopes_are_understood(
    element_x: Any, oauth_hs: Any
) -> None:
    user = await oauth_hs.register("bob")
    token, _ = await element_x.sign_in(user["user_id"])
    granted = token["scope"].split(" ")
    device_id = granted[1].removeprefix(DEVICE_SCOPE)
    assert granted[0] == API_SCOPE and len(device_id) == 10
    assert (await whoami(oauth_hs, token["access_token"]))[1]["device_id"] == device_id

    token, _ = await element_x.sign_in(user["user_id"], f"{UNSTABLE_API} {UNSTABLE_DEVICE}OLDX")
    assert token["scope"] == f"{UNSTABLE_API} {UNSTABLE_DEVICE}OLDX"
    assert (await whoami(oauth_hs, token["access_token"]))[1]["device_id"] == "OLDX"


async def test_fragment_response_mode_and_state(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("carol")
    url, state, verifier = await element_x.authorize_url(API_SCOPE, response_mode="fragment")
    authorization_id = await element_x.consent_id(url)
    pending = await oauth_hs.server.oauth_grants.pending(authorization_id)
    assert pending.client.name == "Element X"
    assert pending.client.metadata["client_name#fr"] == "Élément X"
    assert pending.prompt_create is False
    redirect = await oauth_hs.server.oauth_grants.approve(authorization_id, user["user_id"])
    parts = urlsplit(redirect)
    assert parts.query == ""
    fragment = {k: v[0] for k, v in parse_qs(parts.fragment).items()}
    assert fragment["state"] == state
    token = await element_x.oauth.fetch_token(
        element_x.metadata["token_endpoint"],
        code=fragment["code"],
        code_verifier=verifier,
    )
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 200


async def test_prompt_create_and_deny(element_x: Any, oauth_hs: Any) -> None:
    url, state, _ = await element_x.authorize_url(API_SCOPE, prompt="create")
    authorization_id = await element_x.consent_id(url)
    assert (await oauth_hs.server.oauth_grants.pending(authorization_id)).prompt_create
    redirect = await oauth_hs.server.oauth_grants.deny(authorization_id)
    assert query_of(redirect) == {
        "error": "access_denied",
        "error_description": "The user denied the request",
        "state": state,
    }
    assert await oauth_hs.server.oauth_grants.pending(authorization_id) is None


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    element_x: Any, oauth_hs: Any
) -> None:
    user = await oauth_hs.register("dave")
    first, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}DAVE")
    second = await element_x.oauth.refresh_token(
        element_x.metadata["token_endpoint"], refresh_token=first["refresh_token"]
    )
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    assert (await whoami(oauth_hs, first["access_token"]))[0] == 401
    assert (await whoami(oauth_hs, second["access_token"]))[1]["device_id"] == "DAVE"

    # The first refresh token comes back after its successor was used: it
    # leaked, and the whole session ends.
    with pytest.raises(AuthlibError) as refused:
        await element_x.oauth.refresh_token(
            element_x.metadata["token_endpoint"], refresh_token=first["refresh_token"]
        )
    assert refused.value.error == "invalid_grant"
    assert (await whoami(oauth_hs, second["access_token"]))[0] == 401
    assert not await oauth_hs.pool.fetchval("SELECT count(*) FROM devices WHERE device_id = 'DAVE'")


@pytest.mark.parametrize("hint", ["access_token", "refresh_token"])
async def test_revoking_either_token_logs_the_device_out(
    element_x: Any, oauth_hs: Any, hint: str
) -> None:
    user = await oauth_hs.register("erin")
    token, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}ERIN")
    response = await element_x.oauth.revoke_token(
        element_x.metadata["revocation_endpoint"], token=token[hint], token_type_hint=hint
    )
    assert response.status_code == 200
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 401
    assert not await oauth_hs.pool.fetchval("SELECT count(*) FROM devices WHERE device_id = 'ERIN'")
    # Revoking again, or an unknown token, is no error (RFC 7009 section 2.2).
    again = await element_x.oauth.revoke_token(
        element_x.metadata["revocation_endpoint"], token=token[hint]
    )
    assert again.status_code == 200


async def test_admin_lists_and_ends_oauth_sessions(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("frank")
    admin = await oauth_hs.register("root")
    await oauth_hs.pool.execute(
        "UPDATE users SET admin = TRUE WHERE user_id = $1", admin["user_id"]
    )
    token, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}FRANK")
    path = f"/_synapse/admin/v1/users/{user['user_id']}/oauth_sessions"
    status, body = await oauth_hs.request("GET", path, token=admin["access_token"])
    assert status == 200 and body["total"] == 1
    (session,) = body["sessions"]
    assert (session["device_id"], session["client_name"]) == ("FRANK", "Element X")
    assert session["client_id"] == element_x.client_id
    # The password login of the same user is no OAuth session.
    status, _ = await oauth_hs.request("GET", path, token=user["access_token"])
    assert status == 403
    status, body = await oauth_hs.request(
        "DELETE", f"{path}/{user['device_id']}", token=admin["access_token"]
    )
    assert status == 404
    status, _ = await oauth_hs.request("DELETE", f"{path}/FRANK", token=admin["access_token"])
    assert status == 200
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 401
    assert (await whoami(oauth_hs, user["access_token"]))[0] == 200
    status, body = await oauth_hs.request("GET", path, token=admin["access_token"])
    assert body == {"sessions": [], "total": 0}


async def test_account_page_contract_lists_and_ends_only_oauth_sessions(
    element_x: Any, oauth_hs: Any
) -> None:
    grants = oauth_hs.server.oauth_grants
    user = await oauth_hs.register("heidi")
    token, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}HEIDI")
    (session,) = await grants.sessions(user["user_id"])
    assert (session.device_id, session.client_name) == ("HEIDI", "Element X")
    assert session.scopes == [API_SCOPE, f"{DEVICE_SCOPE}HEIDI"]
    # The password session is not the OAuth server's to end.
    await grants.end_session(user["user_id"], user["device_id"])
    assert (await whoami(oauth_hs, user["access_token"]))[0] == 200
    await grants.end_session(user["user_id"], "HEIDI")
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 401
    assert await grants.sessions(user["user_id"]) == []


async def test_openid_scope_gets_a_signed_id_token(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("grace")
    token, _ = await element_x.sign_in(user["user_id"], f"openid {API_SCOPE}", nonce="n-42")
    well_known = await element_x.web.get(oauth_hs.url + "/.well-known/openid-configuration")
    assert well_known.json() == element_x.metadata
    keys = KeySet.import_key_set((await element_x.web.get(element_x.metadata["jwks_uri"])).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    claims = decoded.claims
    assert claims["iss"] == element_x.metadata["issuer"]
    assert (claims["sub"], claims["aud"], claims["nonce"]) == (
        user["user_id"],
        element_x.client_id,
        "n-42",
    )
    assert claims["exp"] > claims["iat"]


async def test_admin_ends_every_oauth_session_of_a_leaver(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("ivan")
    admin = await oauth_hs.register("boss")
    await oauth_hs.pool.execute(
        "UPDATE users SET admin = TRUE WHERE user_id = $1", admin["user_id"]
    )
    phone, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}P1")
    laptop, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}P2")
    path = f"/_synapse/admin/v1/users/{user['user_id']}/oauth_sessions"
    status, body = await oauth_hs.request("DELETE", path, token=admin["access_token"])
    assert (status, body) == (200, {"ended": 2})
    for token in (phone, laptop):
        assert (await whoami(oauth_hs, token["access_token"]))[0] == 401
    status, body = await oauth_hs.request(
        "GET",
        "/_synapse/admin/v1/users/@ivan:elsewhere/oauth_sessions",
        token=admin["access_token"],
    )
    assert status == 400
