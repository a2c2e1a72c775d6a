"""Upstream OpenID Connect providers' routes: start a sign-in, the callback
the provider sends the browser back to, and its back-channel logout."""

from __future__ import annotations

import logging
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from homeserver.api.http import ClientRequest, endpoint, json_response
from homeserver.api.sso_pages import error_page, redirect
from homeserver.sso.provider import UpstreamError
from homeserver.sso.upstream import SIGN_IN_LIFETIME_MS, UpstreamSignIn
from homeserver.web.browser_sessions import BrowserSessions
from homeserver.web.links import UPSTREAM_PREFIX, safe_next

logger = logging.getLogger(__name__)

# Binds a started sign-in to this browser (see homeserver/sso/upstream.py).
REQUEST_COOKIE = "homeserver_upstream_request"
# Names the completed upstream sign-in, for the login token it leads to.
SIGN_IN_COOKIE = "homeserver_upstream_sign_in"
_ROOT = ("",)


def cookie(headers: Any, name: str) -> str | None:
    try:
        morsel = SimpleCookie(headers.get("Cookie", "")).get(name)
    except CookieError:
        return None
    return morsel.value if morsel is not None and morsel.value else None


class UpstreamApi:
    def __init__(
        self, upstream: UpstreamSignIn, browser_sessions: BrowserSessions, *, secure_cookie: bool
    ) -> None:
        self._upstream = upstream
        self._browser_sessions = browser_sessions
        self._secure = secure_cookie

    @endpoint("GET", UPSTREAM_PREFIX + "/{idp_id}/start", auth=False, prefixes=_ROOT)
    async def start(self, req: ClientRequest) -> web.StreamResponse:
        idp_id = req.params["idp_id"]
        if not self._upstream.has(idp_id):
            return error_page(404, "There is no such identity provider.")
        try:
            started = await self._upstream.start(idp_id, req.query.get("next"))
        except UpstreamError as e:
            logger.warning("cannot start a sign-in through %s: %s", idp_id, e)
            return error_page(502, "The identity provider cannot be reached. Try again later.")
        response = redirect(started.redirect_url)
        response.set_cookie(
            REQUEST_COOKIE,
            started.browser_secret,
            max_age=600,
            path=UPSTREAM_PREFIX + "/",
            httponly=True,
            secure=self._secure,
            # Lax: the provider's redirect back is a top-level GET navigation.
            samesite="Lax",
        )
        return response

    @endpoint("GET", UPSTREAM_PREFIX + "/{idp_id}/callback", auth=False, prefixes=_ROOT)
    async def callback(self, req: ClientRequest) -> web.StreamResponse:
        idp_id = req.params["idp_id"]
        if not self._upstream.has(idp_id):
            return error_page(404, "There is no such identity provider.")
        try:
            finished = await self._upstream.finish(
                idp_id,
                state=req.query.get("state"),
                code=req.query.get("code"),
                error=req.query.get("error"),
                browser_secret=cookie(req.headers, REQUEST_COOKIE),
            )
        except UpstreamError as e:
            logger.warning("sign-in through %s failed: %s", idp_id, e)
            response = error_page(400, str(e))
            response.del_cookie(REQUEST_COOKIE, path=UPSTREAM_PREFIX + "/")
            return response
        response = redirect(safe_next(finished.next_path))
        response.del_cookie(REQUEST_COOKIE, path=UPSTREAM_PREFIX + "/")
        await self._browser_sessions.sign_in(response, finished.user_id, f"upstream:{idp_id}")
        response.set_cookie(
            SIGN_IN_COOKIE,
            finished.sign_in_secret,
            max_age=SIGN_IN_LIFETIME_MS // 1000,
            path="/",
            httponly=True,
            secure=self._secure,
            samesite="Lax",
        )
        return response

    @endpoint("POST", UPSTREAM_PREFIX + "/{idp_id}/backchannel_logout", auth=False, prefixes=_ROOT)
    async def backchannel_logout(self, req: ClientRequest) -> web.Response:
        """OpenID Connect Back-Channel Logout 1.0, 2.8: 200 when done, 400 with
        an OAuth error body for a token we refuse; never cached."""
        status, body = await self._logout(req)
        response = json_response(status, body)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _logout(self, req: ClientRequest) -> tuple[int, dict[str, Any]]:
        idp_id = req.params["idp_id"]
        if not self._upstream.has(idp_id):
            return 404, {"error": "invalid_request", "error_description": "Unknown provider"}
        try:
            form = parse_qs(req.body.decode(), strict_parsing=True, max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            form = {}
        tokens = form.get("logout_token", [])
        if len(tokens) != 1:
            return 400, {
                "error": "invalid_request",
                "error_description": "Exactly one logout_token is required",
            }
        try:
            await self._upstream.backchannel_logout(idp_id, tokens[0])
        except UpstreamError as e:
            logger.warning("refused a back-channel logout from %s: %s", idp_id, e)
            return 400, {"error": "invalid_request", "error_description": str(e)}
        return 200, {}
