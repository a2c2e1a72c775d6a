"""Who is signed in to the server's web pages, by cookie, and their CSRF tokens.

The OAuth 2.0 authorization server's pages (sign-in, consent, device code,
account), the legacy single sign-on flow and the upstream identity provider
callbacks all share this one notion of a signed-in browser, so a person who
signed in once (with a password, LDAP or an upstream provider) is not asked
again by the next page in the same flow.

The cookie carries a random secret; the database keeps only its hash. It is
`HttpOnly`, `SameSite=Lax` (an upstream provider's redirect back to us is a
top-level GET navigation and must carry it) and `Secure` when the public
base URL is https. Every form of a signed-in page carries a CSRF token:
an HMAC of the form's purpose under a per-session key, so it cannot be
forged without the cookie and is checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

import attrs
from aiohttp import web

from storage.browser_sessions import BrowserSessionStore

COOKIE_NAME = "homeserver_browser_session"


@attrs.frozen
class BrowserSession:
    """A signed-in browser, as a page handler sees it."""

    user_id: str
    authenticated_by: str
    created_ts: int
    csrf_key: bytes = attrs.field(repr=False)

    def csrf_token(self, purpose: str) -> str:
        """The token to put in a hidden field of a form for `purpose`
        (for example "consent" or "account.sign_out")."""
        return hmac.new(self.csrf_key, purpose.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, purpose: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(purpose), token)


class BrowserSessions:
    def __init__(
        self, store: BrowserSessionStore, *, secure_cookie: bool, lifetime_ms: int = 86_400_000
    ) -> None:
        self._store = store
        self._secure = secure_cookie
        self._lifetime_ms = lifetime_ms

    async def current(self, headers: Mapping[str, str]) -> BrowserSession | None:
        """The signed-in browser that sent these request headers, if any."""
        secret = _cookie_value(headers.get("Cookie", ""))
        if secret is None:
            return None
        record = await self._store.get(_digest(secret), _now_ms())
        if record is None:
            return None
        return BrowserSession(
            record.user_id, record.authenticated_by, record.created_ts, record.csrf_key
        )

    async def sign_in(
        self, response: web.StreamResponse, user_id: str, authenticated_by: str
    ) -> BrowserSession:
        """Records a new signed-in browser and sets its cookie on `response`
        (a fresh secret each time, so a cookie planted before sign-in is
        never promoted)."""
        secret = secrets.token_urlsafe(32)
        csrf_key = secrets.token_bytes(32)
        now = _now_ms()
        await self._store.add(
            _digest(secret), user_id, authenticated_by, csrf_key, now, now + self._lifetime_ms
        )
        response.set_cookie(
            COOKIE_NAME,
            secret,
            max_age=self._lifetime_ms // 1000,
            path="/",
            httponly=True,
            secure=self._secure,
            samesite="Lax",
        )
        return BrowserSession(user_id, authenticated_by, now, csrf_key)

    async def sign_out(self, headers: Mapping[str, str], response: web.StreamResponse) -> None:
        secret = _cookie_value(headers.get("Cookie", ""))
        if secret is not None:
            await self._store.remove(_digest(secret))
        response.del_cookie(COOKIE_NAME, path="/")

    async def sign_out_user(self, user_id: str) -> int:
        """Ends every browser session of `user_id` (deactivation, an upstream
        provider's back-channel logout)."""
        return await self._store.remove_user(user_id)

    async def prune(self) -> int:
        return await self._store.remove_expired(_now_ms())


def _cookie_value(header: str) -> str | None:
    try:
        morsel = SimpleCookie(header).get(COOKIE_NAME)
    except CookieError:
        return None
    return morsel.value if morsel is not None and morsel.value else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _now_ms() -> int:
    return int(time.time() * 1000)
