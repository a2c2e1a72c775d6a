"""A server with the OAuth 2.0 API on, and the client side Element X plays:
discovery, dynamic registration, an Authlib client with PKCE."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx2 as httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

API_SCOPE = "urn:matrix:client:api:*"
DEVICE_SCOPE = "urn:matrix:client:device:"
# What Element X registers (matrix-rust-sdk's OAuth client metadata): a
# native client whose redirect is the reversed domain of its client_uri.
ELEMENT_X = {
    "application_type": "native",
    "client_name": "Element X",
    "client_name#fr": "Élément X",
    "client_uri": "https://element.io",
    "logo_uri": "https://element.io/logo.png",
    "policy_uri": "https://element.io/privacy",
    "redirect_uris": ["io.element:/callback"],
    "grant_types": [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def oauth_hs(server_factory: Any) -> Any:
    """A server with OAuth on whose public base URL is its real address
    (the issuer and every endpoint in the metadata are absolute URLs)."""
    port = free_port()
    return await server_factory(
        client_listen=f"127.0.0.1:{port}",
        public_baseurl=f"http://127.0.0.1:{port}/",
        oauth={"enabled": True, "legacy_registration": True, "device_poll_interval_s": 1},
    )


@pytest.fixture
async def web() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, as a browser or the app's own HTTP stack."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@attrs.define
class ElementX:
    """The OAuth client side of Element X over Authlib."""

    hs: Any
    web: httpx.AsyncClient
    metadata: dict[str, Any]
    client_id: str
    redirect_uri: str
    oauth: AsyncOAuth2Client

    async def authorize_url(self, scope: str, **extra: str) -> tuple[str, str, str]:
        """The authorization URL, its state and PKCE verifier."""
        verifier = generate_token(64)
        url, state = self.oauth.create_authorization_url(
            self.metadata["authorization_endpoint"],
            code_verifier=verifier,
            scope=scope,
            **extra,
        )
        return url, state, verifier

    async def consent_id(self, url: str) -> str:
        """Open the authorization URL as the browser would: it leads to the consent page."""
        response = await self.web.get(url)
        assert response.status_code == 302, response.text
        location = response.headers["Location"]
        assert location.startswith("/_homeserver/web/consent/"), location
        return location.rsplit("/", 1)[1]

    async def sign_in(
        self, user_id: str, scope: str = API_SCOPE, **extra: str
    ) -> tuple[dict[str, Any], str]:
        """The whole authorization code grant; the consent page's step is
        `OAuthGrants.approve`, which the page calls once the person agreed."""
        url, state, verifier = await self.authorize_url(scope, **extra)
        authorization_id = await self.consent_id(url)
        redirect = await self.hs.server.oauth_grants.approve(authorization_id, user_id)
        token = await self.oauth.fetch_token(
            self.metadata["token_endpoint"],
            authorization_response=redirect,
            code_verifier=verifier,
            state=state,
        )
        return dict(token), redirect


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def register_client(
    web: httpx.AsyncClient, metadata: dict[str, Any], body: dict[str, Any]
) -> httpx.Response:
    return await web.post(metadata["registration_endpoint"], json=body)


@pytest.fixture
async def element_x(oauth_hs: Any, web: httpx.AsyncClient) -> AsyncIterator[ElementX]:
    response = await web.get(oauth_hs.url + "/_matrix/client/v1/auth_metadata")
    assert response.status_code == 200
    metadata = response.json()
    registered = await register_client(web, metadata, ELEMENT_X)
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    redirect_uri = ELEMENT_X["redirect_uris"][0]
    oauth = AsyncOAuth2Client(
        client_id=client_id,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    yield ElementX(oauth_hs, web, metadata, client_id, redirect_uri, oauth)
    await oauth.aclose()
