"""End to end as Element X and a person see it: the Authlib client starts
the authorization code grant, a browser (an aiohttp client with cookies)
signs in on the server's page and presses "Allow" on the consent page, and
the client gets tokens that work; the same for a new account
(prompt=create) and for a device code confirmed in the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.oauth.conftest import API_SCOPE, DEVICE_SCOPE, query_of
from tests.oauth.test_device_grant import poll, start
from tests.web.browser import Browser


@pytest.fixture
async def browser(oauth_hs: Any) -> AsyncIterator[Browser]:
    b = Browser(oauth_hs.url)
    yield b
    await b.close()


async def whoami(hs: Any, token: str) -> tuple[int, Any]:
    return await hs.request("GET", "/_matrix/client/v3/account/whoami", token=token)


async def test_sign_in_consent_token_refresh_revoke(
    element_x: Any, oauth_hs: Any, browser: Browser
) -> None:
    user = await oauth_hs.register("alice", password="correct horse")
    url, state, verifier = await element_x.authorize_url(f"{API_SCOPE} {DEVICE_SCOPE}PHONE")
    sign_in = await browser.get(url)
    assert "/_homeserver/web/sign_in" in sign_in.path
    consent = await browser.submit(sign_in, "sign_in", username="alice", password="correct horse")
    assert "Element X wants to access your account" in consent.html
    back = await browser.submit(consent, "consent", button="allow", follow=False)
    assert back.status == 303
    assert back.location.startswith("io.element:/callback?")
    assert query_of(back.location)["state"] == state

    token = await element_x.oauth.fetch_token(
        element_x.metadata["token_endpoint"],
        authorization_response=back.location,
        code_verifier=verifier,
        state=state,
    )
    status, me = await whoami(oauth_hs, token["access_token"])
    assert (status, me["user_id"], me["device_id"]) == (200, user["user_id"], "PHONE")
    status, synced = await oauth_hs.request(
        "GET", "/_matrix/client/v3/sync?timeout=0", token=token["access_token"]
    )
    assert status == 200 and "next_batch" in synced

    refreshed = await element_x.oauth.refresh_token(
        element_x.metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert (await whoami(oauth_hs, refreshed["access_token"]))[0] == 200
    await element_x.oauth.revoke_token(
        element_x.metadata["revocation_endpoint"], token=refreshed["access_token"]
    )
    assert (await whoami(oauth_hs, refreshed["access_token"]))[0] == 401

    # A second authorization in the same browser goes straight to consent.
    url, _, _ = await element_x.authorize_url(API_SCOPE)
    again = await browser.get(url)
    assert "wants to access your account" in again.html
    denied = await browser.submit(again, "consent", button="deny", follow=False)
    assert query_of(denied.location)["error"] == "access_denied"


async def test_prompt_create_registers_a_new_account(
    element_x: Any, oauth_hs: Any, browser: Browser
) -> None:
    url, state, verifier = await element_x.authorize_url(API_SCOPE, prompt="create")
    register = await browser.get(url)
    assert "/_homeserver/web/register" in register.path
    consent = await browser.submit(
        register,
        "register",
        username="newbie",
        password="a long new password",
        password_confirm="a long new password",
    )
    assert "wants to access your account" in consent.html, consent.html
    back = await browser.submit(consent, "consent", button="allow", follow=False)
    token = await element_x.oauth.fetch_token(
        element_x.metadata["token_endpoint"],
        authorization_response=back.location,
        code_verifier=verifier,
        state=state,
    )
    status, me = await whoami(oauth_hs, token["access_token"])
    assert (status, me["user_id"]) == (200, "@newbie:localhost")


async def test_device_code_confirmed_in_the_browser(
    element_x: Any, oauth_hs: Any, browser: Browser
) -> None:
    await oauth_hs.register("carol", password="pass word")
    grant = await start(element_x, f"{API_SCOPE} {DEVICE_SCOPE}TV")
    sign_in = await browser.get(grant["verification_uri_complete"])
    confirm = await browser.submit(sign_in, "sign_in", username="carol", password="pass word")
    assert "Sign in Element X?" in confirm.html, confirm.html
    done = await browser.submit(confirm, "device", button="allow")
    assert done.status == 200 and "signed in" in done.html

    tokens = await poll(element_x, grant["device_code"])
    assert tokens.status_code == 200, tokens.text
    status, me = await whoami(oauth_hs, tokens.json()["access_token"])
    assert (status, me["user_id"], me["device_id"]) == (200, "@carol:localhost", "TV")


async def test_account_page_names_and_signs_out_oauth_sessions(
    element_x: Any, oauth_hs: Any, browser: Browser
) -> None:
    user = await oauth_hs.register("dora", password="pass word")
    token, _ = await element_x.sign_in(user["user_id"], f"{API_SCOPE} {DEVICE_SCOPE}DORA")
    await browser.sign_in("dora", "pass word")
    account = await browser.get(
        "/_homeserver/web/account?action=org.matrix.session_view&device_id=DORA"
    )
    assert "Signed in with Element X" in account.html, account.html
    signed_out = await browser.submit(account, "devices/sign_out")
    assert signed_out.status == 200
    assert (await whoami(oauth_hs, token["access_token"]))[0] == 401
    assert await oauth_hs.server.oauth_grants.sessions(user["user_id"]) == []
