"""The few HTML pages of single sign-on: errors, the confirmation before a
login token goes to a client URL not in `sso.client_whitelist`, and the
m.login.sso fallback's pages. Plain HTML; every value is escaped."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from aiohttp import web

from homeserver.web.links import upstream_start_url

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
    "a.button,button{display:inline-block;padding:.6rem 1.2rem;margin:.3rem 0;"
    "border-radius:.4rem;border:0;background:#0dbd8b;color:#fff;text-decoration:none;font-size:1rem}"
)


def page(status: int, title: str, body_html: str) -> web.Response:
    text = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            "Referrer-Policy": "no-referrer",
        },
    )


def error_page(status: int, message: str) -> web.Response:
    return page(status, "Sign-in failed", f"<p>{html.escape(message)}</p>")


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def confirm_page(action: str, redirect_url: str, client_host: str, csrf: str) -> web.Response:
    """As Synapse's sso_redirect_confirm: say where the account is going."""
    return page(
        200,
        "Continue to your account",
        f"<p>You are about to sign in to <strong>{html.escape(client_host)}</strong>."
        " Continue only if you trust it and started this sign-in yourself.</p>"
        f'<form method=post action="{html.escape(action)}">'
        f'<input type=hidden name=redirectUrl value="{html.escape(redirect_url)}">'
        f'<input type=hidden name=csrf value="{html.escape(csrf)}">'
        "<button type=submit>Continue</button></form>",
    )


def fallback_page(providers: Sequence[tuple[str, str]], done_path: str) -> web.Response:
    """m.login.sso fallback: sign in again at a provider to confirm it is you."""
    buttons = "".join(
        f'<p><a class=button href="{html.escape(upstream_start_url(idp_id, done_path))}">'
        f"Continue with {html.escape(name)}</a></p>"
        for idp_id, name in providers
    )
    return page(
        200, "Confirm your identity", f"<p>Sign in again to confirm it is you.</p>{buttons}"
    )


def fallback_done_page() -> web.Response:
    """The spec's fallback completion: tell the opener (or the embedding app)."""
    script = (
        "if(window.onAuthDone){window.onAuthDone();}"
        f"else if(window.opener&&window.opener.postMessage){{window.opener.postMessage({json.dumps('authDone')},'*');}}"
    )
    return page(
        200,
        "Identity confirmed",
        f"<p>You may now close this window and return to the application.</p><script>{script}</script>",
    )
