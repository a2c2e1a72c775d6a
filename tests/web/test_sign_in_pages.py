"""The sign-in, registration and sign-out pages, driven as a browser would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.web.browser import Browser, unlabelled_inputs

SIGN_IN = "/_homeserver/web/sign_in"
ACCOUNT = "/_homeserver/web/account"


@pytest.fixture
async def browser(hs: Any) -> AsyncIterator[Browser]:
    b = Browser(hs.url)
    yield b
    await b.close()


async def browser_sessions(hs: Any) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM browser_sessions")


async def test_signing_in_lands_on_next(hs: Any, browser: Browser) -> None:
    await hs.register("alice", "correct horse")
    page = await browser.get(
        f"{SIGN_IN}?next=/_homeserver/web/account%3Faction%3Dorg.matrix.profile"
    )
    assert page.status == 200
    assert '<label for="username">' in page.html and '<label for="password">' in page.html
    # Registration is open on the test server: the page offers it.
    assert "/_homeserver/web/register?next=" in page.html

    landed = await browser.submit(page, "sign_in", username="alice", password="correct horse")
    assert landed.status == 200
    assert landed.path == f"{ACCOUNT}?action=org.matrix.profile"
    assert "@alice:localhost" in landed.html
    assert await browser_sessions(hs) == 1


async def test_a_full_user_id_and_capitals_sign_in_too(hs: Any, browser: Browser) -> None:
    await hs.register("bob", "pw")
    landed = await browser.sign_in("@Bob:localhost", "pw")
    assert landed.path == ACCOUNT and "@bob:localhost" in landed.html


async def test_a_wrong_password_shows_the_form_again(hs: Any, browser: Browser) -> None:
    await hs.register("alice", "correct horse")
    page = await browser.get(SIGN_IN)
    again = await browser.submit(page, "sign_in", username="alice", password="wrong", follow=False)
    assert again.status == 401
    assert "Wrong username or password." in again.html
    assert 'role="alert"' in again.html
    # The form is there again, with the name kept and a usable CSRF token.
    form = again.form("sign_in")
    assert form.fields["username"] == "alice" and form.fields["csrf_token"]
    assert await browser_sessions(hs) == 0
    # An unknown user gets the same message.
    unknown = await browser.submit(again, "sign_in", username="nobody", password="x")
    assert unknown.status == 401 and "Wrong username or password." in unknown.html
    # ...and the right password then works from that form.
    landed = await browser.submit(unknown, "sign_in", username="alice", password="correct horse")
    assert landed.path == ACCOUNT


async def test_a_missing_or_wrong_csrf_token_is_refused(hs: Any, browser: Browser) -> None:
    await hs.register("alice", "pw")
    page = await browser.get(SIGN_IN)
    form = page.form("sign_in")
    for token in (None, "", "0" * 64, form.fields["csrf_token"][:-1]):
        data = {"username": "alice", "password": "pw"}
        if token is not None:
            data["csrf_token"] = token
        refused = await browser.post(form.action, data, follow=False)
        assert refused.status == 403, token
        assert "This form has expired" in refused.html
    assert await browser_sessions(hs) == 0


async def test_a_token_from_another_browser_is_refused(hs: Any, browser: Browser) -> None:
    await hs.register("alice", "pw")
    other = Browser(hs.url)
    try:
        stolen = (await other.get(SIGN_IN)).form("sign_in").fields["csrf_token"]
    finally:
        await other.close()
    await browser.get(SIGN_IN)  # this browser's own cookie
    refused = await browser.post(
        SIGN_IN, {"username": "alice", "password": "pw", "csrf_token": stolen}, follow=False
    )
    assert refused.status == 403
    assert await browser_sessions(hs) == 0


EVIL_NEXTS = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "%2F%2Fevil.example",
    "javascript:alert(1)",
    "/%0d%0aLocation:%20https://evil.example",
]


async def test_next_cannot_leave_the_server(hs: Any) -> None:
    await hs.register("alice", "pw")
    for evil in EVIL_NEXTS:
        browser = Browser(hs.url)
        try:
            page = await browser.get(f"{SIGN_IN}?next={evil}")
            done = await browser.submit(
                page, "sign_in", username="alice", password="pw", follow=False
            )
            assert done.status == 303, evil
            location = done.location or ""
            assert location.startswith("/_homeserver/"), (evil, location)
            assert "\r" not in location and "\n" not in location
            # Signed in already: the page sends on at once, with the same guard.
            again = await browser.get(f"{SIGN_IN}?next={evil}", follow=False)
            assert again.status == 303 and again.location == location
        finally:
            await browser.close()


async def test_pages_carry_the_security_headers(hs: Any, browser: Browser) -> None:
    page = await browser.get(SIGN_IN)
    assert page.headers["X-Frame-Options"] == "DENY"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in page.headers["Cache-Control"]
    # No script and no inline style: the CSP would block them.
    assert "<script" not in page.html and "style=" not in page.html
    assert "<style" not in page.html
    css = await browser.get("/_homeserver/web/style.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "--primary: #0b6e4f" in css.html


async def test_the_operator_themes_the_pages(server_factory: Any) -> None:
    hs = await server_factory(
        web={
            "product_name": "Example <Chat>",
            "logo_url": "https://example.org/logo.png",
            "primary_colour": "#123456",
            "footer_text": "Run by Example IT",
            "terms_url": "https://example.org/terms",
        },
        enable_registration=False,
    )
    browser = Browser(hs.url)
    try:
        page = await browser.get(SIGN_IN)
        assert "Sign in to Example &lt;Chat&gt;" in page.html
        assert '<img class="logo" src="https://example.org/logo.png"' in page.html
        assert "Run by Example IT" in page.html
        assert 'href="https://example.org/terms"' in page.html
        assert "/_homeserver/web/register" not in page.html
        css = await browser.get("/_homeserver/web/style.css")
        assert "--primary: #123456" in css.html
        closed = await browser.get("/_homeserver/web/register")
        assert closed.status == 403 and "Registration is closed" in closed.html
    finally:
        await browser.close()


async def test_a_malformed_form_gets_an_error_page(hs: Any, browser: Browser) -> None:
    await browser.get(SIGN_IN)
    async with browser.http.post(
        hs.url + SIGN_IN,
        data=b"\xff\xfe=\x00",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert resp.status == 400
        html = await resp.text()
    assert "Traceback" not in html and "could not be read" in html
    async with browser.http.post(hs.url + SIGN_IN, json={"username": "x"}) as resp:
        assert resp.status == 400 and "Expected a form" in await resp.text()


async def test_signing_in_is_rate_limited_like_login(server_factory: Any) -> None:
    from tests.conftest import rate_limits_on

    hs = await server_factory(**rate_limits_on(login={"per_second": 0.01, "burst_count": 2}))
    await hs.register("alice", "pw")
    browser = Browser(hs.url)
    try:
        page = await browser.get(SIGN_IN)
        statuses = []
        for _ in range(3):
            page = await browser.submit(page, "sign_in", username="alice", password="bad")
            statuses.append(page.status)
        assert statuses == [401, 401, 429]
        assert "Too many attempts" in page.html
        assert page.form("sign_in")  # the form, not a JSON error
    finally:
        await browser.close()


async def test_signing_out_ends_the_browser_session(hs: Any, browser: Browser) -> None:
    await hs.register("alice", "pw")
    account = await browser.sign_in("alice", "pw")
    # Without the token nothing happens.
    refused = await browser.post("/_homeserver/web/sign_out", {}, follow=False)
    assert refused.status == 403 and await browser_sessions(hs) == 1
    out = await browser.submit(account, "/web/sign_out")
    assert out.path == SIGN_IN and await browser_sessions(hs) == 0
    again = await browser.get(ACCOUNT, follow=False)
    assert again.status == 303 and again.location.startswith(SIGN_IN)


async def test_every_field_has_a_label(hs: Any, browser: Browser) -> None:
    await hs.register("alice", "pw")
    for path in (SIGN_IN, "/_homeserver/web/register"):
        page = await browser.get(path)
        assert page.html.startswith("<!DOCTYPE html>") and '<html lang="en">' in page.html
        assert unlabelled_inputs(page.html) == [], path
    account = await browser.sign_in("alice", "pw")
    assert "<main" in account.html and unlabelled_inputs(account.html) == []
