"""Legacy single sign-on without a named provider, the whole way through the
sign-in page (homeserver/web): its button for the upstream provider, and its
password form, each ending in a login token for the client."""

from __future__ import annotations

import html
import re
import secrets
from typing import Any
from urllib.parse import quote

from tests.sso.conftest import TRUSTED_CLIENT, login_token_of, mock_provider_config
from tests.sso.providers import MockProvider
from tests.sso.test_legacy_sso import new_sub, set_claims, token_login

START = "/_matrix/client/v3/login/sso/redirect?redirectUrl=" + quote(TRUSTED_CLIENT)


async def test_provider_button_on_the_sign_in_page(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    await set_claims(mock_provider, sub, preferred_username="btn" + secrets.token_hex(2))
    browser = browser_factory(hs.url, mock_provider.url)
    page = await browser.go(hs.url + START)
    assert page.status == 200 and "/_homeserver/web/sign_in" in page.url
    button = re.search(r'<a class="button secondary" href="([^"]+)">Mock Provider</a>', page.text)
    assert button, page.text
    done = await browser.sign_in_at_mock(hs.url + html.unescape(button.group(1)), sub)
    assert done.location is not None and done.location.startswith(TRUSTED_CLIENT)
    status, session = await token_login(hs, login_token_of(done.location))
    assert status == 200 and session["user_id"].startswith("@btn")


async def test_password_on_the_sign_in_page(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    account = await hs.register("pwsso", "pw-sso-secret")
    browser = browser_factory(hs.url)
    page = await browser.go(hs.url + START)
    assert page.status == 200
    action = re.search(r'<form method="post" action="([^"]+)">', page.text)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert action and csrf
    done = await browser.go(
        hs.url + html.unescape(action.group(1)),
        method="POST",
        data={"csrf_token": csrf.group(1), "username": "pwsso", "password": "pw-sso-secret"},
    )
    assert done.location is not None and done.location.startswith(TRUSTED_CLIENT), done
    status, session = await token_login(hs, login_token_of(done.location))
    assert status == 200 and session["user_id"] == account["user_id"]
    # A password sign-in is not an upstream one: no device is recorded as the provider's.
    assert await hs.pool.fetchval("SELECT count(*) FROM upstream_devices") == 0
