"""CSRF tokens for forms shown before anyone is signed in (sign-in, registration).

Those forms have no browser session whose key could sign their tokens
(browser_sessions.py), so the browser gets a random pre-session cookie and
each form a token bound to it: an HMAC of the cookie's value and the form's
purpose, under a key derived from the server's signing key. A cross-site
page can neither read the cookie nor compute the token, and a cookie planted
from a sibling domain is useless without the server's key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

import attrs
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from homeserver.web.links import WEB_PREFIX

COOKIE_NAME = "homeserver_web_form"
_SECRET_LENGTH = 43  # secrets.token_urlsafe(32)


def derive_form_key(server_secret: bytes) -> bytes:
    """The HMAC key for form tokens, separated from every other use of the secret."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"homeserver web form csrf"
    ).derive(server_secret)


@attrs.frozen
class FormKey:
    """One browser's pre-session secret; `fresh` when it still has to be set."""

    secret: str = attrs.field(repr=False)
    fresh: bool
    key: bytes = attrs.field(repr=False)

    def token(self, purpose: str) -> str:
        message = f"{purpose}\x00{self.secret}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def check(self, purpose: str, token: str | None) -> bool:
        return (
            not self.fresh and token is not None and hmac.compare_digest(self.token(purpose), token)
        )


class FormKeys:
    def __init__(self, key: bytes, *, secure_cookie: bool) -> None:
        self._key = key
        self._secure = secure_cookie

    def of(self, headers: Mapping[str, str]) -> FormKey:
        """The browser's form key, or a fresh one if it sent none (or a bad one)."""
        secret = _cookie_value(headers.get("Cookie", ""))
        if secret is None:
            return FormKey(secrets.token_urlsafe(32), True, self._key)
        return FormKey(secret, False, self._key)

    def keep(self, response: web.StreamResponse, form_key: FormKey) -> None:
        """Set the cookie of a fresh key on the response that shows its form."""
        if form_key.fresh:
            response.set_cookie(
                COOKIE_NAME,
                form_key.secret,
                path=WEB_PREFIX,
                httponly=True,
                secure=self._secure,
                samesite="Lax",
            )


def _cookie_value(header: str) -> str | None:
    try:
        morsel = SimpleCookie(header).get(COOKIE_NAME)
    except CookieError:
        return None
    if morsel is None or len(morsel.value) != _SECRET_LENGTH:
        return None
    return morsel.value
