"""Where the server's web pages live, and the one guard on where they go next.

Several parts of the server send a browser on to another page: the OAuth 2.0
authorization endpoint to sign-in and consent, legacy single sign-on to
sign-in, the sign-in page to an upstream identity provider, the provider's
callback back to where the flow began. They agree on these paths here, and
every `next` they pass along goes through `safe_next`, so none of them can
be turned into an open redirect.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import attrs

WEB_PREFIX = "/_homeserver/web"
SIGN_IN_PATH = WEB_PREFIX + "/sign_in"
UPSTREAM_PREFIX = "/_homeserver/upstream"
DEFAULT_NEXT = WEB_PREFIX + "/account"


@attrs.frozen
class UpstreamLink:
    """A button on the sign-in page: continue with an upstream provider."""

    idp_id: str
    name: str


def safe_next(next_path: str | None) -> str:
    """`next_path` if it is a path on this server, else the account page.

    Only an absolute path is accepted: no scheme, no host, no `//` or `/\\`
    (which browsers read as another host), no control characters.
    """
    if not next_path or not next_path.startswith("/") or next_path.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    if any(ord(c) < 0x21 or c == "\\" for c in next_path):
        return DEFAULT_NEXT
    parts = urlsplit(next_path)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return next_path


def sign_in_url(next_path: str) -> str:
    """The sign-in page, which sends the browser on to `next_path` once a
    browser session exists (homeserver/web/browser_sessions.py)."""
    return f"{SIGN_IN_PATH}?next={quote(safe_next(next_path), safe='')}"


def upstream_start_url(idp_id: str, next_path: str) -> str:
    """Signing in through upstream provider `idp_id`, then on to `next_path`."""
    return f"{UPSTREAM_PREFIX}/{quote(idp_id, safe='')}/start?next={quote(safe_next(next_path), safe='')}"
