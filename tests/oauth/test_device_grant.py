"""The device authorization grant (RFC 8628, MSC4341): a device shows a code,
the person confirms it on the device page (`OAuthGrants.approve_device` is
what the page calls), and the device's polling yields its tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx

from tests.oauth.conftest import API_SCOPE, DEVICE_SCOPE

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


async def start(element_x: Any, scope: str = API_SCOPE) -> dict[str, Any]:
    response = await element_x.web.post(
        element_x.metadata["device_authorization_endpoint"],
        data={"client_id": element_x.client_id, "scope": scope},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def poll(element_x: Any, device_code: str) -> httpx.Response:
    return await element_x.web.post(
        element_x.metadata["token_endpoint"],
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": device_code,
            "client_id": element_x.client_id,
        },
    )


async def test_device_signs_in_once_the_person_confirms(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("alice")
    grant = await start(element_x, f"{API_SCOPE} {DEVICE_SCOPE}TV")
    base = oauth_hs.url
    assert grant["verification_uri"] == base + "/_homeserver/web/device"
    code = grant["user_code"]
    assert grant["verification_uri_complete"].endswith("?user_code=" + code.replace("-", ""))
    assert grant["interval"] == 1 and grant["expires_in"] == 600

    first = await poll(element_x, grant["device_code"])
    assert (first.status_code, first.json()["error"]) == (400, "authorization_pending")

    grants = oauth_hs.server.oauth_grants
    # The person types the code as they read it, in any case.
    pending = await grants.device_request(code.lower())
    assert pending.client.name == "Element X" and pending.device_id == "TV"
    await grants.approve_device(code, user["user_id"])
    assert await grants.device_request(code) is None

    await asyncio.sleep(grant["interval"])
    tokens = await poll(element_x, grant["device_code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["scope"] == f"{API_SCOPE} {DEVICE_SCOPE}TV"
    status, me = await oauth_hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=body["access_token"]
    )
    assert (status, me["device_id"]) == (200, "TV")
    # The device code yields tokens once.
    again = await poll(element_x, grant["device_code"])
    assert again.json()["error"] == "invalid_grant"


async def test_polling_too_fast_is_slowed_down(element_x: Any) -> None:
    grant = await start(element_x)
    assert (await poll(element_x, grant["device_code"])).json()["error"] == "authorization_pending"
    fast = await poll(element_x, grant["device_code"])
    assert (fast.status_code, fast.json()["error"]) == (400, "slow_down")


async def test_denied_and_unknown_device_codes(element_x: Any, oauth_hs: Any) -> None:
    grant = await start(element_x)
    await oauth_hs.server.oauth_grants.deny_device(grant["user_code"])
    denied = await poll(element_x, grant["device_code"])
    assert denied.json()["error"] == "access_denied"
    unknown = await poll(element_x, "not-a-device-code")
    assert unknown.json()["error"] == "invalid_grant"
    assert not await oauth_hs.pool.fetchval("SELECT count(*) FROM oauth_sessions")


async def test_expired_device_codes(server_factory: Any, oauth_hs: Any, web: Any) -> None:
    metadata = (await web.get(oauth_hs.url + "/_matrix/client/v1/auth_metadata")).json()
    client = await web.post(
        metadata["registration_endpoint"],
        json={
            "application_type": "native",
            "client_uri": "https://example.org",
            "grant_types": [DEVICE_GRANT],
        },
    )
    client_id = client.json()["client_id"]
    response = await web.post(
        metadata["device_authorization_endpoint"],
        data={"client_id": client_id, "scope": API_SCOPE},
    )
    grant = response.json()
    # As if the code's lifetime had passed.
    await oauth_hs.pool.execute("UPDATE oauth_device_grants SET expires_ts = 0")
    expired = await web.post(
        metadata["token_endpoint"],
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": grant["device_code"],
            "client_id": client_id,
        },
    )
    assert expired.json()["error"] == "expired_token"
    assert await oauth_hs.server.oauth_grants.device_request(grant["user_code"]) is None


async def test_device_authorization_refuses_bad_requests(element_x: Any, web: Any) -> None:
    endpoint = element_x.metadata["device_authorization_endpoint"]
    unknown = await web.post(endpoint, data={"client_id": "nobody", "scope": API_SCOPE})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")
    no_scope = await web.post(endpoint, data={"client_id": element_x.client_id})
    assert no_scope.json()["error"] == "invalid_scope"
