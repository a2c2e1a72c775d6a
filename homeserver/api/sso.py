"""Legacy single sign-on for clients that do not speak OAuth 2.0:
`/login/sso/redirect[/{idpId}]`, the completion page that hands the client a
login token, MSC3882's `/login/get_token`, and the m.login.sso UIA fallback.

A login token goes to a client URL in `sso.client_whitelist` (or on this
server) at once; any other client URL is shown first and needs a click, as
Synapse's confirmation page, so a link crafted by someone else cannot carry
a person's login token away unnoticed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint
from homeserver.api.sso_pages import (
    confirm_page,
    error_page,
    fallback_done_page,
    fallback_page,
    redirect,
)
from homeserver.api.upstream import SIGN_IN_COOKIE, cookie
from homeserver.errors import MatrixError, missing_param, not_found
from homeserver.sso.login_tokens import LOGIN_TOKEN_LIFETIME_MS, TokenLogin
from homeserver.sso.upstream import UpstreamSignIn
from homeserver.uia import PASSWORD, UiaService
from homeserver.web.browser_sessions import BrowserSessions
from homeserver.web.links import sign_in_url, upstream_start_url

logger = logging.getLogger(__name__)

COMPLETE_PATH = "/_homeserver/sso/complete"
UIA_DONE_PATH = "/_homeserver/sso/uia_done"
_CONFIRM_PURPOSE = "sso.confirm"
# Schemes a login token is never sent to, whatever the client claims.
_REFUSED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})


def completion_path(redirect_url: str) -> str:
    return f"{COMPLETE_PATH}?redirectUrl={quote(redirect_url, safe='')}"


def check_client_url(url: str | None) -> str:
    """A client's redirectUrl: an absolute URL with a scheme that can be a
    client (https, http, or an app's own scheme), else 400."""
    if not url:
        raise missing_param("'redirectUrl' is required")
    if any(ord(c) < 0x21 or c in "\\<>\"'" for c in url):
        raise MatrixError(400, "M_INVALID_PARAM", "redirectUrl is not a valid URL")
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme.lower() in _REFUSED_SCHEMES:
        raise MatrixError(400, "M_INVALID_PARAM", "redirectUrl is not a client URL")
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise MatrixError(400, "M_INVALID_PARAM", "redirectUrl has no host")
    return url


def with_login_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("loginToken", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class SsoApi:
    def __init__(
        self,
        *,
        upstream: UpstreamSignIn,
        token_login: TokenLogin,
        browser_sessions: BrowserSessions,
        uia: UiaService,
        client_whitelist: Sequence[str],
        public_baseurl: str,
    ) -> None:
        self._upstream = upstream
        self._tokens = token_login
        self._browser_sessions = browser_sessions
        self._uia = uia
        self._trusted = (*client_whitelist, public_baseurl.rstrip("/") + "/")

    def _require_sso(self) -> None:
        if not self._upstream.enabled:
            raise MatrixError(404, "M_UNRECOGNIZED", "Single sign-on is not configured")

    @endpoint("GET", "/login/sso/redirect", auth=False)
    async def sso_redirect(self, req: ClientRequest) -> web.StreamResponse:
        self._require_sso()
        client_url = check_client_url(req.query.get("redirectUrl"))
        return redirect(sign_in_url(completion_path(client_url)))

    @endpoint("GET", "/login/sso/redirect/{idp_id}", auth=False)
    async def sso_redirect_idp(self, req: ClientRequest) -> web.StreamResponse:
        self._require_sso()
        idp_id = req.params["idp_id"]
        if not self._upstream.has(idp_id):
            raise not_found("Unknown identity provider")
        client_url = check_client_url(req.query.get("redirectUrl"))
        return redirect(upstream_start_url(idp_id, completion_path(client_url)))

    @endpoint("GET", COMPLETE_PATH, auth=False, prefixes=("",))
    async def complete(self, req: ClientRequest) -> web.StreamResponse:
        client_url = check_client_url(req.query.get("redirectUrl"))
        session = await self._browser_sessions.current(req.headers)
        if session is None:
            return redirect(sign_in_url(completion_path(client_url)))
        if client_url.startswith(self._trusted):
            return await self._send_token(req, session.user_id, client_url)
        host = urlsplit(client_url).hostname or urlsplit(client_url).scheme
        return confirm_page(COMPLETE_PATH, client_url, host, session.csrf_token(_CONFIRM_PURPOSE))

    @endpoint("POST", COMPLETE_PATH, auth=False, prefixes=("",))
    async def confirm(self, req: ClientRequest) -> web.StreamResponse:
        try:
            form = parse_qs(req.body.decode(), max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            form = {}
        client_url = check_client_url((form.get("redirectUrl") or [None])[0])
        session = await self._browser_sessions.current(req.headers)
        if session is None or not session.check_csrf(
            _CONFIRM_PURPOSE, (form.get("csrf") or [None])[0]
        ):
            return error_page(403, "This confirmation has expired. Start signing in again.")
        return await self._send_token(req, session.user_id, client_url)

    async def _send_token(self, req: ClientRequest, user_id: str, client_url: str) -> web.Response:
        origin = await self._upstream.sign_in_of(cookie(req.headers, SIGN_IN_COOKIE), user_id)
        token = await self._tokens.issue(user_id, origin)
        return redirect(with_login_token(client_url, token))

    @endpoint("POST", "/login/get_token", prefixes=CLIENT_V1, ratelimit="login")
    async def get_token(self, req: ClientRequest) -> dict[str, Any]:
        """MSC3882 (spec v1.7): a signed-in device gets a token to log in another."""
        if not self._tokens.get_login_token_enabled:
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        await self._uia.authenticate(
            req.json().get("auth"),
            [[PASSWORD]],
            method=req.method,
            uri=req.path,
            user_id=req.user.user_id,
        )
        token = await self._tokens.issue(req.user.user_id, None)
        return {"login_token": token, "expires_in_ms": LOGIN_TOKEN_LIFETIME_MS}

    @endpoint("GET", "/auth/m.login.sso/fallback/web", auth=False)
    async def uia_fallback(self, req: ClientRequest) -> web.StreamResponse:
        session_id = req.query.get("session")
        if not session_id:
            raise missing_param("'session' is required")
        if not self._upstream.enabled or await self._uia.session_started(session_id) is None:
            return error_page(400, "This request is unknown or has expired.")
        providers = [(p.idp_id, p.config.idp_name) for p in self._upstream.providers()]
        done = f"{UIA_DONE_PATH}?session={quote(session_id, safe='')}"
        return fallback_page(providers, done)

    @endpoint("GET", UIA_DONE_PATH, auth=False, prefixes=("",))
    async def uia_done(self, req: ClientRequest) -> web.StreamResponse:
        """Marks m.login.sso done for the account that just signed in again
        at a provider; an older browser session does not count."""
        session_id = req.query.get("session")
        started = await self._uia.session_started(session_id) if session_id else None
        if session_id is None or started is None:
            return error_page(400, "This request is unknown or has expired.")
        session = await self._browser_sessions.current(req.headers)
        if (
            session is None
            or not session.authenticated_by.startswith("upstream:")
            or session.created_ts < started
        ):
            return error_page(403, "Sign in again at your identity provider to confirm.")
        await self._uia.complete_sso(session_id, session.user_id)
        return fallback_done_page()
