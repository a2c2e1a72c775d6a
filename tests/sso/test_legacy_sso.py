"""Legacy single sign-on through the mock provider, as a browser and a
client that does not speak OAuth 2.0 see it: /login flows, the redirect to
the provider, the login token, and its redemption."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.sso.conftest import TRUSTED_CLIENT, login_token_of, mock_provider_config
from tests.sso.providers import MockProvider


async def set_claims(provider: MockProvider, sub: str, **claims: Any) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{provider.url}/users/{quote(sub, safe='')}", json=claims) as resp:
            assert resp.status == 204


def new_sub() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


async def sso_login_token(hs: Any, browser: Any, sub: str, client: str = TRUSTED_CLIENT) -> str:
    start = f"{hs.url}/_matrix/client/v3/login/sso/redirect/mock?redirectUrl={quote(client)}"
    page = await browser.sign_in_at_mock(start, sub)
    assert page.location is not None and page.location.startswith(client), page
    return login_token_of(page.location)


async def token_login(hs: Any, token: str) -> tuple[int, Any]:
    return await hs.request(
        "POST", "/_matrix/client/v3/login", json={"type": "m.login.token", "token": token}
    )


async def test_login_flows_offer_sso_and_token(sso_factory: Any, mock_provider: MockProvider):
    hs = await sso_factory([mock_provider_config(mock_provider, idp_icon="mxc://x/y")])
    status, body = await hs.request("GET", "/_matrix/client/v3/login")
    assert status == 200
    flows = {f["type"]: f for f in body["flows"]}
    assert flows["m.login.sso"]["identity_providers"] == [
        {"id": "mock", "name": "Mock Provider", "icon": "mxc://x/y", "brand": "org.example.mock"}
    ]
    assert flows["m.login.token"] == {"type": "m.login.token", "get_login_token": True}
    assert "m.login.password" in flows
    status, caps = await hs.request(
        "GET", "/_matrix/client/v3/capabilities", token=(await hs.register("caps"))["access_token"]
    )
    assert caps["capabilities"]["m.get_login_token"] == {"enabled": True}


async def test_no_sso_flows_without_providers(hs: Any):
    status, body = await hs.request("GET", "/_matrix/client/v3/login")
    assert [f["type"] for f in body["flows"]] == ["m.login.password"]
    status, body = await hs.request(
        "GET", "/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fa.example%2F"
    )
    assert status == 404 and body["errcode"] == "M_UNRECOGNIZED"


async def test_first_sign_in_creates_the_account_and_the_second_links_to_it(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    name = f"Alice Ü{secrets.token_hex(2)}"
    await set_claims(
        mock_provider,
        sub,
        preferred_username=name,
        name="Alice Example",
        email="alice@corp.example",
    )
    browser = browser_factory(hs.url, mock_provider.url)
    token = await sso_login_token(hs, browser, sub)
    status, session = await token_login(hs, token)
    assert status == 200, session
    # Lower case ("ü"), then the "ü" and space escaped as the spec's historical mapping does.
    expected = "alice=20=c3=bc" + name[-4:]
    assert session["user_id"] == f"@{expected}:localhost"
    status, profile = await hs.request(
        "GET", f"/_matrix/client/v3/profile/{quote(session['user_id'])}"
    )
    assert profile["displayname"] == "Alice Example"
    email = await hs.pool.fetchval(
        "SELECT email FROM upstream_links WHERE user_id = $1", session["user_id"]
    )
    assert email == "alice@corp.example"
    status, who = await hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=session["access_token"]
    )
    assert status == 200 and who["user_id"] == session["user_id"]

    # Again, from another browser: the same account, no new one.
    users_before = await hs.pool.fetchval("SELECT count(*) FROM users")
    token = await sso_login_token(hs, browser_factory(hs.url, mock_provider.url), sub)
    status, again = await token_login(hs, token)
    assert status == 200 and again["user_id"] == session["user_id"]
    assert again["device_id"] != session["device_id"]
    assert await hs.pool.fetchval("SELECT count(*) FROM users") == users_before


async def test_login_token_is_single_use_and_expires(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    await set_claims(mock_provider, sub, preferred_username="once" + secrets.token_hex(2))
    browser = browser_factory(hs.url, mock_provider.url)
    token = await sso_login_token(hs, browser, sub)
    status, _ = await token_login(hs, token)
    assert status == 200
    status, body = await token_login(hs, token)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"

    # A token older than two minutes: its expiry moved into the past.
    token = await sso_login_token(hs, browser, sub)
    await hs.pool.execute("UPDATE login_tokens SET expires_ts = expires_ts - 120001")
    devices_before = await hs.pool.fetchval("SELECT count(*) FROM devices")
    status, body = await token_login(hs, token)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    assert await hs.pool.fetchval("SELECT count(*) FROM devices") == devices_before

    for bad in ({"type": "m.login.token"}, {"type": "m.login.token", "token": 5}):
        status, body = await hs.request("POST", "/_matrix/client/v3/login", json=bad)
        assert status == 400 and body["errcode"] == "M_MISSING_PARAM"
    status, body = await token_login(hs, "mlt_made-up")
    assert status == 403


async def test_untrusted_client_url_asks_for_confirmation(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    await set_claims(mock_provider, sub, preferred_username="conf" + secrets.token_hex(2))
    browser = browser_factory(hs.url, mock_provider.url)
    client = "https://elsewhere.example/app?x=1"
    start = f"{hs.url}/_matrix/client/v3/login/sso/redirect/mock?redirectUrl={quote(client)}"
    page = await browser.sign_in_at_mock(start, sub)
    assert page.status == 200 and page.location is None
    assert "Continue to your account" in page.text and "elsewhere.example" in page.text
    assert "loginToken" not in page.text
    assert await hs.pool.fetchval("SELECT count(*) FROM login_tokens") == 0

    csrf = re.search(r'name=csrf value="([^"]+)"', page.text)
    assert csrf
    form_url = f"{hs.url}/_homeserver/sso/complete"
    # A forged form (no or a wrong CSRF token) gets nothing.
    forged = await browser.go(form_url, method="POST", data={"redirectUrl": client, "csrf": "x"})
    assert forged.status == 403 and forged.location is None
    assert await hs.pool.fetchval("SELECT count(*) FROM login_tokens") == 0

    done = await browser.go(
        form_url, method="POST", data={"redirectUrl": client, "csrf": csrf.group(1)}
    )
    assert done.location is not None and done.location.startswith(client + "&loginToken=")
    status, _ = await token_login(hs, login_token_of(done.location))
    assert status == 200


async def test_bad_client_urls_are_refused(sso_factory: Any, mock_provider: MockProvider):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    base = "/_matrix/client/v3/login/sso/redirect"
    for query in ("", "?redirectUrl=javascript%3Aalert(1)", "?redirectUrl=%2Frelative"):
        status, body = await hs.request("GET", f"{base}/mock{query}")
        assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM"), query
    status, body = await hs.request("GET", f"{base}/nope?redirectUrl=https%3A%2F%2Fa.example%2F")
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


async def test_redirect_without_idp_goes_to_the_sign_in_page(
    sso_factory: Any, mock_provider: MockProvider
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{hs.url}/_matrix/client/v3/login/sso/redirect",
            params={"redirectUrl": TRUSTED_CLIENT},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
    assert location.startswith("/_homeserver/web/sign_in?next=")
    assert quote("/_homeserver/sso/complete?redirectUrl=", safe="") in location
    # Without a browser session the completion page sends the browser to sign in too.
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{hs.url}/_homeserver/sso/complete",
            params={"redirectUrl": TRUSTED_CLIENT},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302
            assert resp.headers["Location"].startswith("/_homeserver/web/sign_in?next=")
    assert await hs.pool.fetchval("SELECT count(*) FROM login_tokens") == 0
