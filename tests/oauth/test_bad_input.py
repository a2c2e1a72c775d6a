"""Bad input to the OAuth 2.0 endpoints (issue 19, point 7): each is refused
with the right OAuth error, logged, and creates nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError as AuthlibError
from authlib.oauth2.rfc6749.errors import MismatchingStateException

from tests.oauth.conftest import API_SCOPE, DEVICE_SCOPE, ELEMENT_X, free_port, query_of


async def device_count(hs: Any, user_id: str) -> int:
    return int(await hs.pool.fetchval("SELECT count(*) FROM devices WHERE user_id = $1", user_id))


async def approved_code(element_x: Any, user_id: str, **extra: str) -> tuple[dict, str, str]:
    url, state, verifier = await element_x.authorize_url(f"{API_SCOPE} {DEVICE_SCOPE}BAD", **extra)
    authorization_id = await element_x.consent_id(url)
    redirect = await element_x.hs.server.oauth_grants.approve(authorization_id, user_id)
    return query_of(redirect), state, verifier


async def test_wrong_pkce_verifier(element_x: Any, oauth_hs: Any, caplog: Any) -> None:
    user = await oauth_hs.register("alice")
    params, _, _ = await approved_code(element_x, user["user_id"])
    with caplog.at_level(logging.INFO), pytest.raises(AuthlibError) as refused:
        await element_x.oauth.fetch_token(
            element_x.metadata["token_endpoint"],
            code=params["code"],
            code_verifier=generate_token(64),
        )
    assert refused.value.error == "invalid_grant"
    assert "wrong PKCE code_verifier" in caplog.text
    assert await device_count(oauth_hs, user["user_id"]) == 1  # the password login only


async def test_wrong_state_is_caught_by_the_client(element_x: Any, oauth_hs: Any) -> None:
    """The server echoes `state` untouched, so the client's check sees a forgery."""
    user = await oauth_hs.register("bob")
    params, state, verifier = await approved_code(element_x, user["user_id"], state="s-123")
    assert params["state"] == "s-123"
    forged = f"io.element:/callback?code={params['code']}&state=other"
    with pytest.raises(MismatchingStateException):
        await element_x.oauth.fetch_token(
            element_x.metadata["token_endpoint"],
            authorization_response=forged,
            code_verifier=verifier,
            state="s-123",
        )
    assert await device_count(oauth_hs, user["user_id"]) == 1


async def test_replayed_code_is_refused_and_revokes_its_tokens(
    element_x: Any, oauth_hs: Any, caplog: Any
) -> None:
    user = await oauth_hs.register("carol")
    params, _, verifier = await approved_code(element_x, user["user_id"])
    endpoint = element_x.metadata["token_endpoint"]
    token = await element_x.oauth.fetch_token(endpoint, code=params["code"], code_verifier=verifier)
    assert await device_count(oauth_hs, user["user_id"]) == 2
    with caplog.at_level(logging.INFO), pytest.raises(AuthlibError) as refused:
        await element_x.oauth.fetch_token(endpoint, code=params["code"], code_verifier=verifier)
    assert refused.value.error == "invalid_grant"
    assert "replayed" in caplog.text
    status, _ = await oauth_hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=token["access_token"]
    )
    assert status == 401
    assert await device_count(oauth_hs, user["user_id"]) == 1


async def test_code_is_bound_to_its_client_and_redirect_uri(
    element_x: Any, oauth_hs: Any, web: Any
) -> None:
    user = await oauth_hs.register("dave")
    params, _, verifier = await approved_code(element_x, user["user_id"])
    endpoint = element_x.metadata["token_endpoint"]
    other = await web.post(
        element_x.metadata["registration_endpoint"],
        json={
            "application_type": "native",
            "client_uri": "https://element.io",
            "redirect_uris": ["io.element:/callback"],
        },
    )
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "code_verifier": verifier,
        "redirect_uri": "io.element:/callback",
        "client_id": other.json()["client_id"],
    }
    response = await web.post(endpoint, data=form)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    assert response.headers["Cache-Control"] == "no-store"
    assert await device_count(oauth_hs, user["user_id"]) == 1


async def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    element_x: Any, oauth_hs: Any, caplog: Any
) -> None:
    before = await oauth_hs.pool.fetchval("SELECT count(*) FROM oauth_authorizations")
    for redirect_uri in (
        "https://evil.test/cb",
        "io.element:/callback/../other",
        "io.element:/callbackx",
    ):
        element_x.oauth.redirect_uri = redirect_uri
        url, _, _ = await element_x.authorize_url(API_SCOPE)
        with caplog.at_level(logging.INFO):
            response = await element_x.web.get(url)
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert response.headers["Content-Type"].startswith("text/html")
        assert "redirect URI is not registered" in response.text
    assert "unregistered redirect_uri" in caplog.text
    # An unknown client gets the page too.
    response = await element_x.web.get(
        element_x.metadata["authorization_endpoint"] + "?client_id=nobody&response_type=code"
    )
    assert response.status_code == 400 and "Location" not in response.headers
    after = await oauth_hs.pool.fetchval("SELECT count(*) FROM oauth_authorizations")
    assert after == before


async def test_loopback_redirect_matches_on_any_port(oauth_hs: Any, web: Any) -> None:
    metadata = (await web.get(oauth_hs.url + "/_matrix/client/v1/auth_metadata")).json()
    registered = await web.post(
        metadata["registration_endpoint"],
        json={
            "application_type": "native",
            "client_uri": "https://example.org",
            "redirect_uris": ["http://127.0.0.1/callback"],
        },
    )
    client_id = registered.json()["client_id"]
    base = (
        f"{metadata['authorization_endpoint']}?client_id={client_id}&response_type=code"
        f"&code_challenge_method=S256&code_challenge={'a' * 43}&scope={API_SCOPE}"
    )
    ok = await web.get(base + "&redirect_uri=http://127.0.0.1:53123/callback")
    assert ok.status_code == 302
    assert ok.headers["Location"].startswith("/_homeserver/web/consent/")
    other_path = await web.get(base + "&redirect_uri=http://127.0.0.1:53123/other")
    assert other_path.status_code == 400


async def test_errors_after_the_redirect_uri_is_trusted_go_back_to_the_client(
    element_x: Any, oauth_hs: Any
) -> None:
    endpoint = element_x.metadata["authorization_endpoint"]
    base = (
        f"{endpoint}?client_id={element_x.client_id}&redirect_uri=io.element:/callback"
        "&response_type=code&state=xyz"
    )
    challenge = "&code_challenge_method=S256&code_challenge=" + "b" * 43
    cases = [
        (f"&scope={API_SCOPE}", "invalid_request"),  # no PKCE
        (
            f"&scope={API_SCOPE}&code_challenge_method=plain&code_challenge={'b' * 43}",
            "invalid_request",
        ),
        (challenge + "&scope=openid", "invalid_scope"),
        (challenge + f"&scope={API_SCOPE}&prompt=none", "invalid_request"),
    ]
    for extra, error in cases:
        response = await element_x.web.get(base + extra)
        assert response.status_code == 302
        params = query_of(response.headers["Location"])
        assert params["state"] == "xyz"
        assert params["error"] == error
    wrong_type = await element_x.web.get(
        base.replace("response_type=code", "response_type=token") + challenge
    )
    assert query_of(wrong_type.headers["Location"])["error"] == "unsupported_response_type"
    assert not await oauth_hs.pool.fetchval("SELECT count(*) FROM oauth_authorizations")


async def test_token_endpoint_refuses_malformed_requests(element_x: Any, web: Any) -> None:
    endpoint = element_x.metadata["token_endpoint"]
    cases = [
        ({"grant_type": "authorization_code", "client_id": "nobody"}, 401, "invalid_client"),
        (
            {"grant_type": "password", "client_id": element_x.client_id},
            400,
            "unauthorized_client",
        ),
        (
            {"grant_type": "authorization_code", "client_id": element_x.client_id},
            400,
            "invalid_request",
        ),
        (
            {"grant_type": "refresh_token", "client_id": element_x.client_id, "refresh_token": "x"},
            400,
            "invalid_grant",
        ),
    ]
    for form, status, error in cases:
        response = await web.post(endpoint, data=form)
        assert (response.status_code, response.json()["error"]) == (status, error), form
    as_json = await web.post(endpoint, json={"grant_type": "authorization_code"})
    assert as_json.json()["error"] == "invalid_request"


async def test_token_endpoint_refuses_repeated_parameters(element_x: Any, web: Any) -> None:
    """RFC 6749 section 3.2: a parameter may not be sent twice."""
    body = (
        f"grant_type=authorization_code&client_id={element_x.client_id}"
        "&code=a&code=b&code_verifier=" + "v" * 43
    )
    response = await web.post(
        element_x.metadata["token_endpoint"],
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_prompt_create_needs_open_registration(server_factory: Any, web: Any) -> None:
    port = free_port()
    closed = await server_factory(
        client_listen=f"127.0.0.1:{port}",
        public_baseurl=f"http://127.0.0.1:{port}/",
        enable_registration=False,
        oauth={"enabled": True},
    )
    metadata = (await web.get(closed.url + "/_matrix/client/v1/auth_metadata")).json()
    assert metadata["prompt_values_supported"] == []
    client_id = (await web.post(metadata["registration_endpoint"], json=ELEMENT_X)).json()[
        "client_id"
    ]
    response = await web.get(
        f"{metadata['authorization_endpoint']}?client_id={client_id}"
        "&redirect_uri=io.element:/callback&response_type=code&prompt=create"
        f"&code_challenge_method=S256&code_challenge={'c' * 43}&scope={API_SCOPE}"
    )
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


async def test_nul_and_garbage_in_token_requests(element_x: Any, web: Any) -> None:
    endpoint = element_x.metadata["token_endpoint"]
    for body in (b"grant_type=authorization_code&client_id=a%00b", b"\xff\xfe", b"%zz=1"):
        response = await web.post(
            endpoint,
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code in (400, 401), body
        assert response.json()["error"] in ("invalid_request", "invalid_client"), body
    revoke = await web.post(
        element_x.metadata["revocation_endpoint"],
        data={"token": "t\x00", "client_id": element_x.client_id},
    )
    assert (revoke.status_code, revoke.json()["error"]) == (400, "invalid_request")
    assert await element_x.hs.server.oauth_grants.device_request("AB\x00CD") is None
