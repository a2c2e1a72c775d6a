"""The consent page of the OAuth authorization code grant and the
confirmation page of the device authorization grant (RFC 8628).

The authorization server (homeserver/oauth) validated the request and stored
it; these pages show it to a signed-in person and pass on Allow or Deny. The
only redirect off this server is the URL `OAuthGrants.approve`/`deny`
returns: the client's registered redirect URI.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.upstream import SIGN_IN_COOKIE, cookie
from homeserver.api.web_forms import (
    WEB_PREFIXES,
    BadForm,
    csrf_failure,
    field,
    html_errors,
    query_arg,
    read_form,
)
from homeserver.api.web_sign_in import register_url
from homeserver.sso.upstream import UpstreamSignIn
from homeserver.web.browser_sessions import BrowserSession, BrowserSessions
from homeserver.web.client_view import client_view, describe_scopes
from homeserver.web.grants_protocol import OAuthGrants
from homeserver.web.links import WEB_PREFIX, sign_in_url
from homeserver.web.pages import SECURITY_HEADERS, PageRenderer, redirect

CONSENT_PREFIX = WEB_PREFIX + "/consent/"
DEVICE_PATH = WEB_PREFIX + "/device"
_MAX_ID = 255


class ConsentPages:
    def __init__(
        self,
        *,
        pages: PageRenderer,
        browser_sessions: BrowserSessions,
        grants: OAuthGrants | None,
        registration_open: bool,
        upstream: UpstreamSignIn | None = None,
    ) -> None:
        self.pages = pages
        self._browsers = browser_sessions
        self._grants = grants
        self._registration_open = registration_open
        # Upstream OpenID Connect sign-in: an approval remembers the browser's
        # sign-in there, so the provider's back-channel logout ends the device.
        self._upstream = upstream

    async def _upstream_sign_in(self, req: ClientRequest, user_id: str) -> bytes | None:
        if self._upstream is None:
            return None
        return await self._upstream.handle_of(cookie(req.headers, SIGN_IN_COOKIE), user_id)

    def _oauth_off(self) -> web.Response:
        return self.pages.error(404, "Not available", "This server does not offer OAuth sign-in.")

    def _expired(self) -> web.Response:
        return self.pages.error(
            404,
            "This link has expired",
            "The sign-in request was already answered, has expired, or comes from "
            "an unknown application. Go back to the application and start again.",
        )

    @endpoint("GET", "/consent/{authorization_id}", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def consent_page(self, req: ClientRequest) -> web.StreamResponse:
        authorization_id = _authorization_id(req)
        if self._grants is None:
            return self._oauth_off()
        pending = await self._grants.pending(authorization_id)
        if pending is None:
            return self._expired()
        here = CONSENT_PREFIX + quote(authorization_id, safe="")
        browser = await self._browsers.current(req.headers)
        if browser is None:
            if pending.prompt_create and self._registration_open:
                return redirect(register_url(here))
            return redirect(sign_in_url(here))
        return self.pages.page(
            "consent.html",
            redirects_to_client=True,
            action=here,
            csrf_token=browser.csrf_token(_consent_purpose(authorization_id)),
            client=client_view(pending.client),
            asks=describe_scopes(pending.scopes),
            user_id=browser.user_id,
        )

    @endpoint("POST", "/consent/{authorization_id}", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def consent(self, req: ClientRequest) -> web.StreamResponse:
        authorization_id = _authorization_id(req)
        if self._grants is None:
            return self._oauth_off()
        here = CONSENT_PREFIX + quote(authorization_id, safe="")
        browser = await self._browsers.current(req.headers)
        if browser is None:
            return redirect(sign_in_url(here))
        form = read_form(req)
        if not browser.check_csrf(_consent_purpose(authorization_id), form.get("csrf_token")):
            return csrf_failure(self.pages)
        decision = _decision(form)
        if await self._grants.pending(authorization_id) is None:
            return self._expired()
        try:
            if decision:
                target = await self._grants.approve(
                    authorization_id,
                    browser.user_id,
                    upstream_sign_in=await self._upstream_sign_in(req, browser.user_id),
                )
            else:
                target = await self._grants.deny(authorization_id)
        except LookupError:
            return self._expired()
        return _to_client(target)

    @endpoint("GET", "/device", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def device_page(self, req: ClientRequest) -> web.StreamResponse:
        if self._grants is None:
            return self._oauth_off()
        user_code = (query_arg(req, "user_code") or "").strip()
        browser = await self._browsers.current(req.headers)
        if browser is None:
            here = DEVICE_PATH + (f"?user_code={quote(user_code, safe='')}" if user_code else "")
            return redirect(sign_in_url(here))
        if not user_code:
            return self._code_entry()
        if (
            len(user_code) > _MAX_ID
            or (pending := await self._grants.device_request(user_code)) is None
        ):
            return self._code_entry(
                status=404,
                user_code=user_code[:_MAX_ID],
                error="That code is not valid or has expired. Check the code on your device.",
            )
        return self.pages.page(
            "device_confirm.html",
            action=DEVICE_PATH,
            csrf_token=browser.csrf_token(_device_purpose(user_code)),
            user_code=user_code,
            client=client_view(pending.client),
            asks=describe_scopes(pending.scopes),
            user_id=browser.user_id,
        )

    @endpoint("POST", "/device", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def device(self, req: ClientRequest) -> web.StreamResponse:
        if self._grants is None:
            return self._oauth_off()
        browser = await self._browsers.current(req.headers)
        if browser is None:
            return redirect(sign_in_url(DEVICE_PATH))
        form = read_form(req)
        user_code = field(form, "user_code", max_length=_MAX_ID).strip()
        if not browser.check_csrf(_device_purpose(user_code), form.get("csrf_token")):
            return csrf_failure(self.pages)
        decision = _decision(form)
        if await self._grants.device_request(user_code) is None:
            return self._code_entry(
                status=404, user_code=user_code, error="That code is not valid or has expired."
            )
        try:
            return await self._answer_device(req, browser, user_code, decision)
        except LookupError:
            return self._code_entry(
                status=404, user_code=user_code, error="That code is not valid or has expired."
            )

    async def _answer_device(
        self, req: ClientRequest, browser: BrowserSession, user_code: str, allow: bool
    ) -> web.Response:
        assert self._grants is not None
        if allow:
            await self._grants.approve_device(
                user_code,
                browser.user_id,
                upstream_sign_in=await self._upstream_sign_in(req, browser.user_id),
            )
            return self.pages.page(
                "done.html",
                title="Device signed in",
                message="You can go back to your device now; it is signed in.",
            )
        await self._grants.deny_device(user_code)
        return self.pages.page(
            "done.html",
            title="Sign-in refused",
            message="The device was not signed in. You can close this page.",
        )

    def _code_entry(
        self, *, status: int = 200, user_code: str = "", error: str | None = None
    ) -> web.Response:
        return self.pages.page(
            "device_code.html", status, action=DEVICE_PATH, user_code=user_code, error=error
        )


def _authorization_id(req: ClientRequest) -> str:
    authorization_id = req.params["authorization_id"]
    if not authorization_id or len(authorization_id) > _MAX_ID:
        raise BadForm("Malformed authorization id")
    return authorization_id


def _decision(form: dict[str, str]) -> bool:
    decision = form.get("decision")
    if decision not in ("allow", "deny"):
        raise BadForm("Choose Allow or Deny")
    return decision == "allow"


def _consent_purpose(authorization_id: str) -> str:
    return f"consent:{authorization_id}"


def _device_purpose(user_code: str) -> str:
    return f"device:{user_code}"


def _to_client(url: str) -> web.Response:
    """The one redirect off this server: to the URL the authorization
    server built on the client's registered redirect URI."""
    response = web.Response(status=303, headers={"Location": url})
    response.headers.update(SECURITY_HEADERS)
    return response
