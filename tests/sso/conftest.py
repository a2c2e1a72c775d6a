"""Fixtures for single sign-on: upstream providers, a server configured
with them, and a browser (aiohttp with a cookie jar) that follows redirects."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import attrs
import pytest
from aiohttp import web

from tests.sso.providers import CraftedProvider, MockProvider, run_mock_provider

TRUSTED_CLIENT = "https://trusted.example/"
MOCK_CLIENT_ID = "homeserver-client"


@pytest.fixture(scope="session")
def mock_provider() -> Iterator[MockProvider]:
    with run_mock_provider() as provider:
        yield provider


@pytest.fixture
async def crafted_provider() -> AsyncIterator[CraftedProvider]:
    provider = CraftedProvider()
    runner = web.AppRunner(provider.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    provider.url = f"http://127.0.0.1:{port}"
    yield provider
    await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mock_provider_config(provider: MockProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "idp_id": "mock",
        "idp_name": "Mock Provider",
        "idp_brand": "org.example.mock",
        "issuer": provider.issuer,
        "client_id": MOCK_CLIENT_ID,
        "client_secret": "not-so-secret",
        "scopes": ["openid", "profile", "email"],
        "user_mapping_provider": {
            "localpart_template": "{{ user.preferred_username }}",
            "display_name_template": "{{ user.name }}",
            "email_template": "{{ user.email }}",
        },
        **overrides,
    }


@pytest.fixture
async def sso_factory(server_factory: Any) -> Any:
    """A server whose public base URL is its real address (the provider
    sends the browser back there), with the given providers."""

    async def start(providers: list[dict[str, Any]], **overrides: Any) -> Any:
        port = free_port()
        return await server_factory(
            client_listen=f"127.0.0.1:{port}",
            public_baseurl=f"http://127.0.0.1:{port}/",
            oidc_providers=providers,
            sso={"client_whitelist": [TRUSTED_CLIENT], "login_via_existing_session": True},
            **overrides,
        )

    return start


@attrs.frozen
class Page:
    status: int
    url: str
    text: str
    location: str | None


class Browser:
    """Follows redirects itself, so a test sees where each one goes, and
    stops at a URL outside the server and providers (a client's)."""

    def __init__(self, *local_prefixes: str) -> None:
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._local = local_prefixes

    async def go(self, url: str, *, method: str = "GET", data: Any = None) -> Page:
        for _ in range(12):
            async with self.http.request(method, url, data=data, allow_redirects=False) as resp:
                text = await resp.text()
                location = resp.headers.get("Location")
                if resp.status not in (301, 302, 303, 307) or location is None:
                    return Page(resp.status, url, text, None)
            location = urljoin(url, location)
            if not location.startswith(self._local):
                return Page(resp.status, url, text, location)
            url, method, data = location, "GET", None
        raise AssertionError("too many redirects")

    async def sign_in_at_mock(self, start_url: str, sub: str) -> Page:
        """From a URL that leads to the mock provider's form, sign in as `sub`."""
        page = await self.go(start_url)
        assert "oauth2/authorize" in page.url, (page.status, page.url, page.text[:300])
        return await self.go(page.url, method="POST", data={"sub": sub})

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def browser_factory() -> AsyncIterator[Any]:
    browsers: list[Browser] = []

    def make(*local_prefixes: str) -> Browser:
        browser = Browser(*local_prefixes)
        browsers.append(browser)
        return browser

    yield make
    for browser in browsers:
        await browser.close()


def login_token_of(url: str) -> str:
    match = re.search(r"[?&]loginToken=([^&#]+)", url)
    assert match, url
    return match.group(1)


def host_of(url: str) -> str:
    return urlsplit(url).netloc
