"""Back-channel logout of OAuth sessions: a person signs in to an OAuth
client (Element X over Authlib) through an upstream provider's button on the
sign-in page, approves on the consent (or device-code) page, and the client
gets its tokens; the provider's logout token then ends that device at once,
while a device the same person signed in with a password stays."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.oauth import conftest as oauth_fixtures
from tests.oauth.conftest import API_SCOPE, DEVICE_SCOPE
from tests.oauth.test_device_grant import poll, start
from tests.sso.providers import CraftedProvider
from tests.sso.test_upstream_checks import crafted_config
from tests.web.browser import Browser, Page

# Element X as tests/oauth has it, on this module's `oauth_hs`.
element_x = oauth_fixtures.element_x
web = oauth_fixtures.web

LOGOUT_PATH = "/_homeserver/upstream/crafted/backchannel_logout"
PASSWORD = "a password of crafted"


@pytest.fixture
async def oauth_hs(sso_factory: Any, crafted_provider: CraftedProvider) -> Any:
    """OAuth on, and the crafted provider linking its subject to the
    existing account @crafted (which also has a password)."""
    hs = await sso_factory(
        [crafted_config(crafted_provider, allow_existing_users=True)],
        oauth={"enabled": True, "legacy_registration": True, "device_poll_interval_s": 1},
    )
    await hs.register("crafted", password=PASSWORD)
    return hs


@pytest.fixture
async def browser(oauth_hs: Any) -> AsyncIterator[Browser]:
    b = Browser(oauth_hs.url)
    yield b
    await b.close()


async def through_provider(browser: Browser, sign_in: Page) -> Page:
    """Press the provider's button on the sign-in page; the provider signs
    the person in and the browser comes back to the page that asked."""
    assert "/_homeserver/web/sign_in" in sign_in.path, sign_in.path
    button = re.search(r'<a class="button secondary" href="([^"]+)">Crafted</a>', sign_in.html)
    assert button, sign_in.html
    return await browser.get(html.unescape(button.group(1)))


async def oauth_sign_in(element_x: Any, browser: Browser, device_id: str) -> tuple[str, str]:
    """Through the provider to the consent page and Allow; the code
    redirect and the PKCE verifier, for the client to fetch its tokens."""
    url, _, verifier = await element_x.authorize_url(f"{API_SCOPE} {DEVICE_SCOPE}{device_id}")
    consent = await through_provider(browser, await browser.get(url))
    assert "Element X wants to access your account" in consent.html, consent.html
    back = await browser.submit(consent, "consent", button="allow", follow=False)
    assert back.status == 303 and back.location is not None
    return back.location, verifier


async def fetch_token(element_x: Any, redirect: str, verifier: str) -> dict[str, Any]:
    return dict(
        await element_x.oauth.fetch_token(
            element_x.metadata["token_endpoint"],
            authorization_response=redirect,
            code_verifier=verifier,
        )
    )


async def whoami(hs: Any, token: str) -> tuple[int, Any]:
    return await hs.request("GET", "/_matrix/client/v3/account/whoami", token=token)


async def refresh(element_x: Any, refresh_token: str) -> Any:
    return await element_x.web.post(
        element_x.metadata["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": element_x.client_id,
        },
    )


async def logout(hs: Any, provider: CraftedProvider, **claims: str) -> None:
    status, body = await hs.request(
        "POST",
        LOGOUT_PATH,
        data=f"logout_token={provider.logout_token(**claims)}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body


async def password_device(hs: Any) -> str:
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": "crafted", "password": PASSWORD},
    )
    assert status == 200, body
    return body["access_token"]


async def test_logout_by_sid_ends_the_oauth_device_and_spares_the_password_one(
    element_x: Any, oauth_hs: Any, browser: Browser, crafted_provider: CraftedProvider
) -> None:
    crafted_provider.claims = {"sid": "idp-session-1"}
    redirect, verifier = await oauth_sign_in(element_x, browser, "VIAIDP")
    token = await fetch_token(element_x, redirect, verifier)
    status, me = await whoami(oauth_hs, token["access_token"])
    assert (status, me["user_id"], me["device_id"]) == (200, "@crafted:localhost", "VIAIDP")
    by_password = await password_device(oauth_hs)

    await logout(oauth_hs, crafted_provider, sid="idp-session-1")
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 401
    refused = await refresh(element_x, token["refresh_token"])
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    status, me = await whoami(oauth_hs, by_password)
    assert (status, me["user_id"]) == (200, "@crafted:localhost")
    _, devices = await oauth_hs.request("GET", "/_matrix/client/v3/devices", token=by_password)
    assert "VIAIDP" not in {d["device_id"] for d in devices["devices"]}


async def test_logout_by_sub_ends_a_device_code_sign_in(
    element_x: Any, oauth_hs: Any, browser: Browser, crafted_provider: CraftedProvider
) -> None:
    grant = await start(element_x, f"{API_SCOPE} {DEVICE_SCOPE}TV")
    confirm = await through_provider(browser, await browser.get(grant["verification_uri_complete"]))
    assert "Sign in Element X?" in confirm.html, confirm.html
    done = await browser.submit(confirm, "device", button="allow")
    assert done.status == 200 and "signed in" in done.html
    tokens = await poll(element_x, grant["device_code"])
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    assert (await whoami(oauth_hs, access))[0] == 200
    by_password = await password_device(oauth_hs)

    await logout(oauth_hs, crafted_provider, sub="crafted-user")
    assert (await whoami(oauth_hs, access))[0] == 401
    # By subject, the provider ends every sign-in of it, not the password's.
    assert (await whoami(oauth_hs, by_password))[0] == 200


async def test_a_code_approved_by_a_sign_in_ended_since_yields_no_tokens(
    element_x: Any, oauth_hs: Any, browser: Browser, crafted_provider: CraftedProvider
) -> None:
    crafted_provider.claims = {"sid": "idp-session-2"}
    redirect, verifier = await oauth_sign_in(element_x, browser, "LATE")
    await logout(oauth_hs, crafted_provider, sid="idp-session-2")
    code = re.search(r"[?&]code=([^&]+)", redirect)
    assert code
    response = await element_x.web.post(
        element_x.metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code.group(1),
            "code_verifier": verifier,
            "redirect_uri": element_x.redirect_uri,
            "client_id": element_x.client_id,
        },
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    by_password = await password_device(oauth_hs)
    _, devices = await oauth_hs.request("GET", "/_matrix/client/v3/devices", token=by_password)
    assert "LATE" not in {d["device_id"] for d in devices["devices"]}
