"""Discovery (auth_metadata) and dynamic client registration with the spec's rules."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from tests.oauth.conftest import ELEMENT_X, register_client


async def test_metadata_names_every_endpoint_the_spec_requires(
    oauth_hs: Any, web: httpx.AsyncClient
) -> None:
    base = oauth_hs.url
    stable = (await web.get(base + "/_matrix/client/v1/auth_metadata")).json()
    unstable = await web.get(base + "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata")
    assert unstable.json() == stable
    assert stable["issuer"] == base + "/"
    issuer = await web.get(base + "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer")
    assert issuer.json() == {"issuer": base + "/"}
    for key in (
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "revocation_endpoint",
        "device_authorization_endpoint",
    ):
        assert stable[key].startswith(base + "/"), key
    assert stable["code_challenge_methods_supported"] == ["S256"]
    assert stable["response_types_supported"] == ["code"]
    assert set(stable["response_modes_supported"]) == {"query", "fragment"}
    assert {"authorization_code", "refresh_token"} <= set(stable["grant_types_supported"])
    assert "urn:ietf:params:oauth:grant-type:device_code" in stable["grant_types_supported"]
    assert stable["prompt_values_supported"] == ["create"]
    assert stable["account_management_uri"] == base + "/_homeserver/web/account"
    assert "org.matrix.cross_signing_reset" in stable["account_management_actions_supported"]


async def test_without_oauth_there_is_no_metadata(hs: Any) -> None:
    status, body = await hs.request("GET", "/_matrix/client/v1/auth_metadata")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await hs.request("GET", "/_matrix/client/v3/login")
    assert body == {"flows": [{"type": "m.login.password"}]}


async def test_oauth_takes_over_registration_unless_kept(
    server_factory: Any, oauth_hs: Any
) -> None:
    closed = await server_factory(oauth={"enabled": True})
    status, body = await closed.request(
        "POST",
        "/_matrix/client/v3/register",
        json={"username": "bob", "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert "OAuth" in body["error"]
    # Existing password accounts keep signing in.
    await oauth_hs.register("carol")
    status, body = await oauth_hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": "carol", "password": "secret"},
    )
    assert status == 200, body


async def test_registration_keeps_the_metadata_and_localised_names(
    element_x: Any, oauth_hs: Any
) -> None:
    response = await register_client(element_x.web, element_x.metadata, ELEMENT_X)
    body = response.json()
    assert response.status_code == 201
    assert body["client_id"] and body["client_id"] != element_x.client_id
    assert body["client_name#fr"] == "Élément X"
    assert body["token_endpoint_auth_method"] == "none"
    assert body["redirect_uris"] == ["io.element:/callback"]
    stored = await oauth_hs.pool.fetchval(
        "SELECT metadata->>'client_name' FROM oauth_clients WHERE client_id = $1",
        body["client_id"],
    )
    assert stored == "Element X"


async def test_registration_accepts_web_and_loopback_clients(element_x: Any) -> None:
    for body in (
        {"client_uri": "https://app.example.org", "redirect_uris": ["https://app.example.org/cb"]},
        {
            "client_uri": "https://example.org",
            "redirect_uris": ["https://chat.example.org/cb?x=1"],
        },
        {
            "application_type": "native",
            "client_uri": "https://example.org",
            "redirect_uris": ["http://127.0.0.1/cb", "http://[::1]/cb", "org.example.app:/cb"],
        },
    ):
        response = await register_client(element_x.web, element_x.metadata, body)
        assert response.status_code == 201, (body, response.text)


async def test_registration_refuses_what_the_spec_forbids(element_x: Any, oauth_hs: Any) -> None:
    before = await oauth_hs.pool.fetchval("SELECT count(*) FROM oauth_clients")
    cases = [
        ({"redirect_uris": ["https://example.org/cb"]}, "invalid_client_metadata"),
        (
            {"client_uri": "http://example.org", "redirect_uris": ["https://example.org/cb"]},
            "invalid_client_metadata",
        ),
        (
            {"client_uri": "https://u:p@example.org", "redirect_uris": ["https://example.org/"]},
            "invalid_client_metadata",
        ),
        (
            {"client_uri": "https://example.org", "redirect_uris": ["https://evil.test/cb"]},
            "invalid_redirect_uri",
        ),
        (
            {"client_uri": "https://example.org", "redirect_uris": ["http://example.org/cb"]},
            "invalid_redirect_uri",
        ),
        (
            {
                "application_type": "native",
                "client_uri": "https://example.org",
                "redirect_uris": ["com.evil:/cb"],
            },
            "invalid_redirect_uri",
        ),
        (
            {
                "application_type": "native",
                "client_uri": "https://example.org",
                "redirect_uris": ["http://192.168.1.2/cb"],
            },
            "invalid_redirect_uri",
        ),
        (
            {
                "client_uri": "https://example.org",
                "logo_uri": "https://cdn.evil.test/logo.png",
                "redirect_uris": ["https://example.org/cb"],
            },
            "invalid_client_metadata",
        ),
        (
            {
                "client_uri": "https://example.org",
                "redirect_uris": ["https://example.org/cb"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            "invalid_client_metadata",
        ),
        (
            {
                "client_uri": "https://example.org",
                "redirect_uris": ["https://example.org/cb"],
                "grant_types": ["implicit"],
            },
            "invalid_client_metadata",
        ),
    ]
    for body, error in cases:
        response = await register_client(element_x.web, element_x.metadata, body)
        assert response.status_code == 400, body
        assert response.json()["error"] == error, (body, response.json())
    not_json = await element_x.web.post(element_x.metadata["registration_endpoint"], content=b"[")
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_request"
    assert await oauth_hs.pool.fetchval("SELECT count(*) FROM oauth_clients") == before
