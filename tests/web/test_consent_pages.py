"""The consent and device-code pages, and the account page's cross-signing
reset, against a stand-in for the OAuth authorization server.

The real `OAuthGrants` comes with the OAuth branch; until then these tests
supply their own object with the same methods (homeserver/web/
grants_protocol.py) by constructing the page handlers with it, on an app of
their own next to the real server whose browser sessions they share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from homeserver.accounts.login import PasswordChecker
from homeserver.accounts.passwords import PasswordHasher
from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import SessionService
from homeserver.api.http import Router, matrix_middleware
from homeserver.api.web_account import AccountPages
from homeserver.api.web_consent import ConsentPages
from homeserver.api.web_sign_in import SignInPages
from homeserver.config import RateLimit
from homeserver.identity.bindings import ThreepidBindings
from homeserver.metrics import Metrics
from homeserver.profile import ProfileService
from homeserver.ratelimit import RateLimiter
from homeserver.web.form_keys import FormKeys, derive_form_key
from homeserver.web.links import UpstreamLink
from homeserver.web.pages import PageRenderer
from storage.sessions import SessionStore
from storage.threepids import ThreepidBindingStore
from storage.uia import RegistrationTokenStore
from storage.users import UserStore
from tests.web.browser import Browser

API_SCOPE = "urn:matrix:client:api:*"
CALLBACK = "https://client.example/callback"


@attrs.define
class FakeClient:
    name: str | None = "Element X"
    client_uri: str | None = "https://element.io/"
    logo_uri: str | None = "https://element.io/logo.png"


@attrs.define
class FakePending:
    client: FakeClient = attrs.Factory(FakeClient)
    scopes: Sequence[str] = (API_SCOPE, "urn:matrix:client:device:ABCDEFGH")
    prompt_create: bool = False


@attrs.define
class FakeSession:
    device_id: str
    client_name: str | None


@attrs.define
class FakeGrants:
    """Keeps what the pages decided, as the authorization server would."""

    pendings: dict[str, FakePending] = attrs.Factory(dict)
    devices: dict[str, FakePending] = attrs.Factory(dict)
    calls: list[tuple[str, ...]] = attrs.Factory(list)
    # Devices that signed in through an OAuth client.
    oauth_devices: list[str] = attrs.Factory(list)
    # Approving fails, as a broken authorization server would.
    broken: bool = False

    async def pending(self, authorization_id: str) -> FakePending | None:
        return self.pendings.get(authorization_id)

    async def approve(
        self, authorization_id: str, user_id: str, upstream_sign_in: bytes | None = None
    ) -> str:
        if self.broken:
            raise RuntimeError("the authorization server fell over")
        self.calls.append(("approve", authorization_id, user_id))
        if self.pendings.pop(authorization_id, None) is None:
            raise LookupError(authorization_id)
        return f"{CALLBACK}?code=the-code&state=xyz"

    async def deny(self, authorization_id: str) -> str:
        self.calls.append(("deny", authorization_id))
        del self.pendings[authorization_id]
        return f"{CALLBACK}?error=access_denied&state=xyz"

    async def device_request(self, user_code: str) -> FakePending | None:
        return self.devices.get(user_code)

    async def approve_device(
        self, user_code: str, user_id: str, upstream_sign_in: bytes | None = None
    ) -> None:
        self.calls.append(("approve_device", user_code, user_id))
        if self.devices.pop(user_code, None) is None:
            raise LookupError(user_code)

    async def deny_device(self, user_code: str) -> None:
        self.calls.append(("deny_device", user_code))
        del self.devices[user_code]

    async def sessions(self, user_id: str) -> list[FakeSession]:
        return [FakeSession(device_id, "Element X") for device_id in self.oauth_devices]

    async def end_session(self, user_id: str, session_or_device_id: str) -> None:
        self.calls.append(("end_session", user_id, session_or_device_id))

    async def approve_cross_signing_reset(self, user_id: str) -> None:
        self.calls.append(("cross_signing_reset", user_id))


@attrs.define
class Pages:
    """The page handlers wired with the fake grants, served next to `hs`."""

    url: str
    grants: FakeGrants


def page_handlers(hs: Any, grants: FakeGrants) -> list[object]:
    pool = hs.pool
    users = UserStore(pool)
    hasher = PasswordHasher(4)
    sessions = SessionService(SessionStore(pool), refreshable_lifetime_ms=300_000)
    accounts = AccountService(users, sessions, hasher, RegistrationTokenStore(pool), "localhost")
    passwords = PasswordChecker(users, hasher)
    renderer = PageRenderer(hs.server.config.web)
    off = RateLimiter(RateLimit(per_second=1, burst_count=1), enabled=False)
    browsers = hs.server.browser_sessions
    return [
        SignInPages(
            pages=renderer,
            browser_sessions=browsers,
            form_keys=FormKeys(derive_form_key(b"k" * 32), secure_cookie=False),
            passwords=passwords,
            accounts=accounts,
            registration_tokens=RegistrationTokenStore(pool),
            login_ip_limiter=off,
            login_account_limiter=off,
            registration_limiter=off,
            upstream_links=[UpstreamLink("keycloak", "Company SSO"), UpstreamLink("g", "Google")],
            server_name="localhost",
            enable_registration=True,
            registration_requires_token=False,
        ),
        ConsentPages(
            pages=renderer, browser_sessions=browsers, grants=grants, registration_open=True
        ),
        AccountPages(
            pages=renderer,
            browser_sessions=browsers,
            sessions=sessions,
            profiles=ProfileService(users),
            accounts=accounts,
            passwords=passwords,
            threepids=ThreepidBindings(ThreepidBindingStore(pool), None),
            grants=grants,
        ),
    ]


@pytest.fixture
async def pages(hs: Any) -> AsyncIterator[Pages]:
    grants = FakeGrants()
    app = web.Application(middlewares=[matrix_middleware(Metrics())])
    Router(app, None, {}).mount(*page_handlers(hs, grants))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Pages(str(server.make_url("")).rstrip("/"), grants)
    await server.close()


@pytest.fixture
async def browser(hs: Any, pages: Pages) -> AsyncIterator[Browser]:
    """A browser on the pages' app, signed in as alice (cookies are per host,
    so the session is the real server's too)."""
    await hs.register("alice", "pw")
    b = Browser(pages.url)
    yield b
    await b.close()


async def test_the_sign_in_page_offers_each_upstream_provider(
    pages: Pages, browser: Browser
) -> None:
    page = await browser.get("/_homeserver/web/sign_in?next=/_homeserver/web/consent/a1")
    assert (
        'href="/_homeserver/upstream/keycloak/start?next=%2F_homeserver%2Fweb%2Fconsent%2Fa1">'
        "Company SSO</a>" in page.html
    )
    assert 'href="/_homeserver/upstream/g/start?next=' in page.html


async def test_consent_asks_a_signed_out_browser_to_sign_in_first(
    pages: Pages, browser: Browser
) -> None:
    pages.grants.pendings["a1"] = FakePending()
    page = await browser.get("/_homeserver/web/consent/a1", follow=False)
    assert page.status == 303
    assert page.location == "/_homeserver/web/sign_in?next=%2F_homeserver%2Fweb%2Fconsent%2Fa1"
    # prompt=create: registration first, then back to consent.
    pages.grants.pendings["a2"] = FakePending(prompt_create=True)
    page = await browser.get("/_homeserver/web/consent/a2", follow=False)
    assert page.location == "/_homeserver/web/register?next=%2F_homeserver%2Fweb%2Fconsent%2Fa2"


async def test_allowing_sends_the_browser_to_the_client(pages: Pages, browser: Browser) -> None:
    pages.grants.pendings["a1"] = FakePending()
    page = await browser.get("/_homeserver/web/consent/a1")
    # Not signed in: the sign-in form, then the consent page.
    consent = await browser.submit(page, "sign_in", username="alice", password="pw")
    assert consent.path == "/_homeserver/web/consent/a1"
    assert "Element X wants to access your account" in consent.html
    assert '<a href="https://element.io/"' in consent.html
    assert '<img class="client-logo" src="https://element.io/logo.png"' in consent.html
    assert "Sign in as a new device (ABCDEFGH)" in consent.html
    assert "@alice:localhost" in consent.html
    # The form's redirect ends at the client: no form-action restriction here.
    csp = consent.headers["Content-Security-Policy"]
    assert "form-action" not in csp and "frame-ancestors 'none'" in csp
    assert consent.headers["X-Frame-Options"] == "DENY"

    done = await browser.submit(consent, "consent", button="allow", follow=False)
    assert done.status == 303
    assert done.location == f"{CALLBACK}?code=the-code&state=xyz"
    assert pages.grants.calls == [("approve", "a1", "@alice:localhost")]
    # The same page again: already answered.
    again = await browser.get("/_homeserver/web/consent/a1")
    assert again.status == 404 and "This link has expired" in again.html


async def test_denying_sends_access_denied(pages: Pages, browser: Browser) -> None:
    pages.grants.pendings["a1"] = FakePending()
    await browser.sign_in("alice", "pw")
    consent = await browser.get("/_homeserver/web/consent/a1")
    done = await browser.submit(consent, "consent", button="deny", follow=False)
    assert done.location == f"{CALLBACK}?error=access_denied&state=xyz"
    assert pages.grants.calls == [("deny", "a1")]


async def test_consent_without_the_csrf_token_changes_nothing(
    pages: Pages, browser: Browser
) -> None:
    pages.grants.pendings["a1"] = FakePending()
    await browser.sign_in("alice", "pw")
    consent = await browser.get("/_homeserver/web/consent/a1")
    token = consent.form("consent").fields["csrf_token"]
    for data in ({"decision": "allow"}, {"decision": "allow", "csrf_token": token[::-1]}):
        refused = await browser.post("/_homeserver/web/consent/a1", data, follow=False)
        assert refused.status == 403
    # A token for one authorization does not answer another.
    pages.grants.pendings["a2"] = FakePending()
    refused = await browser.post(
        "/_homeserver/web/consent/a2", {"decision": "allow", "csrf_token": token}, follow=False
    )
    assert refused.status == 403
    assert pages.grants.calls == []


async def test_unknown_authorizations_and_hostile_client_metadata(
    pages: Pages, browser: Browser
) -> None:
    await browser.sign_in("alice", "pw")
    unknown = await browser.get("/_homeserver/web/consent/nope")
    assert unknown.status == 404 and "This link has expired" in unknown.html
    assert "Traceback" not in unknown.html
    pages.grants.pendings["a1"] = FakePending(
        FakeClient(
            name='<script>alert("x")</script>',
            client_uri="javascript:alert(1)",
            logo_uri="http://insecure.example/logo.png",
        )
    )
    page = await browser.get("/_homeserver/web/consent/a1")
    assert "<script>" not in page.html and "&lt;script&gt;" in page.html
    assert "javascript:" not in page.html
    assert "insecure.example" not in page.html


async def test_device_code_confirmation(pages: Pages, browser: Browser) -> None:
    pages.grants.devices["WDJB-MJHT"] = FakePending(FakeClient(name="Element X on a phone"))
    page = await browser.get("/_homeserver/web/device?user_code=WDJB-MJHT", follow=False)
    assert page.location == (
        "/_homeserver/web/sign_in?next=%2F_homeserver%2Fweb%2Fdevice%3Fuser_code%3DWDJB-MJHT"
    )
    await browser.sign_in("alice", "pw")
    entry = await browser.get("/_homeserver/web/device")
    assert '<label for="user_code">' in entry.html
    wrong = await browser.submit(entry, "device", user_code="AAAA-BBBB")
    assert wrong.status == 404 and "not valid or has expired" in wrong.html
    confirm = await browser.submit(wrong, "device", user_code="WDJB-MJHT")
    assert "Sign in Element X on a phone?" in confirm.html and "WDJB-MJHT" in confirm.html
    forged = await browser.post(
        "/_homeserver/web/device",
        {"user_code": "WDJB-MJHT", "decision": "allow", "csrf_token": "bad"},
    )
    assert forged.status == 403 and pages.grants.calls == []
    done = await browser.submit(confirm, "device", button="allow")
    assert "Device signed in" in done.html
    assert pages.grants.calls == [("approve_device", "WDJB-MJHT", "@alice:localhost")]


async def test_device_code_can_be_denied(pages: Pages, browser: Browser) -> None:
    pages.grants.devices["CODE"] = FakePending()
    await browser.sign_in("alice", "pw")
    confirm = await browser.get("/_homeserver/web/device?user_code=CODE")
    done = await browser.submit(confirm, "device", button="deny")
    assert "Sign-in refused" in done.html
    assert pages.grants.calls == [("deny_device", "CODE")]


async def test_cross_signing_reset_is_approved_on_the_account_page(
    pages: Pages, browser: Browser
) -> None:
    await browser.sign_in("alice", "pw")
    page = await browser.get("/_homeserver/web/account?action=org.matrix.cross_signing_reset")
    assert "Reset your cross-signing keys" in page.html
    refused = await browser.post("/_homeserver/web/account/cross_signing_reset", {})
    assert refused.status == 403 and pages.grants.calls == []
    done = await browser.submit(page, "cross_signing_reset")
    assert "The reset is allowed" in done.html
    assert pages.grants.calls == [("cross_signing_reset", "@alice:localhost")]


async def test_signing_a_device_out_also_ends_its_oauth_session(
    hs: Any, pages: Pages, browser: Browser
) -> None:
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": "alice", "password": "pw", "device_id": "D1"},
    )
    assert status == 200
    pages.grants.oauth_devices.append("D1")
    await browser.sign_in("alice", "pw")
    page = await browser.get("/_homeserver/web/account?action=org.matrix.session_end&device_id=D1")
    assert "Signed in with Element X" in page.html
    await browser.submit(page, "devices/sign_out")
    assert pages.grants.calls == [("end_session", "@alice:localhost", "D1")]


async def test_without_oauth_its_pages_say_so(hs: Any) -> None:
    browser = Browser(hs.url)
    try:
        for path in ("/_homeserver/web/consent/a1", "/_homeserver/web/device"):
            page = await browser.get(path)
            assert page.status == 404 and "does not offer OAuth sign-in" in page.html
    finally:
        await browser.close()


async def test_a_failure_shows_an_error_page_not_a_trace(pages: Pages, browser: Browser) -> None:
    pages.grants.pendings["a1"] = FakePending()
    await browser.sign_in("alice", "pw")
    consent = await browser.get("/_homeserver/web/consent/a1")
    pages.grants.broken = True
    failed = await browser.submit(consent, "consent", button="allow")
    assert failed.status == 500 and "Something went wrong" in failed.html
    assert "fell over" not in failed.html and "Traceback" not in failed.html
    assert failed.headers["Content-Type"].startswith("text/html")


async def test_an_authorization_answered_meanwhile_shows_expired(
    pages: Pages, browser: Browser
) -> None:
    pages.grants.pendings["a1"] = FakePending()
    await browser.sign_in("alice", "pw")
    first = await browser.get("/_homeserver/web/consent/a1")
    second = await browser.get("/_homeserver/web/consent/a1")  # another tab
    await browser.submit(first, "consent", button="allow", follow=False)
    late = await browser.submit(second, "consent", button="allow", follow=False)
    assert late.status == 404 and "This link has expired" in late.html
