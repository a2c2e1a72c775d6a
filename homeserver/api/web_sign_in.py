"""The sign-in and registration pages, and signing a browser out.

A person reaches these from an OAuth client (through the consent page),
from legacy single sign-on, or directly; `next` says where to go once a
browser session exists, and only ever leads to a page of this server
(`safe_next`). Failures show the form again with a message, never a
redirect, so a wrong password cannot loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import web

from homeserver.accounts.login import PasswordChecker, identifier_user
from homeserver.accounts.registration import AccountService
from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.web_forms import (
    WEB_PREFIXES,
    csrf_failure,
    field,
    html_errors,
    query_arg,
    read_form,
)
from homeserver.errors import MatrixError
from homeserver.ratelimit import RateLimiter
from homeserver.web.browser_sessions import BrowserSessions
from homeserver.web.form_keys import FormKey, FormKeys
from homeserver.web.links import (
    SIGN_IN_PATH,
    WEB_PREFIX,
    UpstreamLink,
    safe_next,
    upstream_start_url,
)
from homeserver.web.pages import PageRenderer, redirect
from storage.uia import RegistrationTokenStore

REGISTER_PATH = WEB_PREFIX + "/register"
SIGN_OUT_PATH = WEB_PREFIX + "/sign_out"
SIGN_OUT_PURPOSE = "sign_out"
_BAD_CREDENTIALS = "Wrong username or password."


def register_url(next_path: str) -> str:
    """The registration page, then on to `next_path` (prompt=create)."""
    return f"{REGISTER_PATH}?next={quote(safe_next(next_path), safe='')}"


def _with_next(path: str, next_path: str) -> str:
    return f"{path}?next={quote(next_path, safe='')}"


class SignInPages:
    def __init__(
        self,
        *,
        pages: PageRenderer,
        browser_sessions: BrowserSessions,
        form_keys: FormKeys,
        passwords: PasswordChecker,
        accounts: AccountService,
        registration_tokens: RegistrationTokenStore,
        login_ip_limiter: RateLimiter,
        login_account_limiter: RateLimiter,
        registration_limiter: RateLimiter,
        upstream_links: Sequence[UpstreamLink],
        server_name: str,
        enable_registration: bool,
        registration_requires_token: bool,
    ) -> None:
        self.pages = pages
        self._browsers = browser_sessions
        self._form_keys = form_keys
        self._passwords = passwords
        self._accounts = accounts
        self._registration_tokens = registration_tokens
        self._login_ip_limiter = login_ip_limiter
        self._login_account_limiter = login_account_limiter
        self._registration_limiter = registration_limiter
        self._upstream_links = tuple(upstream_links)
        self._server_name = server_name
        self._registration_open = enable_registration
        self._token_required = registration_requires_token

    @endpoint("GET", "/style.css", auth=False, prefixes=WEB_PREFIXES)
    async def stylesheet(self, req: ClientRequest) -> web.StreamResponse:
        return self.pages.stylesheet()

    @endpoint("GET", "/sign_in", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def sign_in_form(self, req: ClientRequest) -> web.StreamResponse:
        next_path = safe_next(query_arg(req, "next"))
        if await self._browsers.current(req.headers) is not None:
            return redirect(next_path)
        return self._sign_in_page(self._form_keys.of(req.headers), next_path)

    @endpoint("POST", "/sign_in", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def sign_in(self, req: ClientRequest) -> web.StreamResponse:
        next_path = safe_next(query_arg(req, "next"))
        form = read_form(req)
        form_key = self._form_keys.of(req.headers)
        if not form_key.check("sign_in", form.get("csrf_token")):
            return csrf_failure(self.pages)
        username = field(form, "username", max_length=255).strip()
        password = field(form, "password")
        try:
            self._login_ip_limiter.check(req.ip or "")
            user_id = identifier_user({"user": username}, self._server_name)
            self._login_account_limiter.check(user_id.lower())
            user = await self._passwords.check(user_id, password)
        except MatrixError as e:
            status, message = _sign_in_error(e)
            return self._sign_in_page(
                form_key, next_path, status=status, username=username, error=message
            )
        if user.locked:
            return self._sign_in_page(
                form_key,
                next_path,
                status=403,
                username=username,
                error="This account has been locked.",
            )
        response = redirect(next_path)
        await self._browsers.sign_in(response, user.user_id, "password")
        return response

    def _sign_in_page(
        self,
        form_key: FormKey,
        next_path: str,
        *,
        status: int = 200,
        username: str = "",
        error: str | None = None,
    ) -> web.Response:
        response = self.pages.page(
            "sign_in.html",
            status,
            action=_with_next(SIGN_IN_PATH, next_path),
            csrf_token=form_key.token("sign_in"),
            username=username,
            error=error,
            upstream=[
                {"name": link.name, "url": upstream_start_url(link.idp_id, next_path)}
                for link in self._upstream_links
            ],
            register_url=register_url(next_path) if self._registration_open else None,
        )
        self._form_keys.keep(response, form_key)
        return response

    @endpoint("GET", "/register", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def register_form(self, req: ClientRequest) -> web.StreamResponse:
        next_path = safe_next(query_arg(req, "next"))
        if not self._registration_open:
            return self._registration_closed()
        return self._register_page(self._form_keys.of(req.headers), next_path)

    @endpoint("POST", "/register", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def register(self, req: ClientRequest) -> web.StreamResponse:
        next_path = safe_next(query_arg(req, "next"))
        if not self._registration_open:
            return self._registration_closed()
        form = read_form(req)
        form_key = self._form_keys.of(req.headers)
        if not form_key.check("register", form.get("csrf_token")):
            return csrf_failure(self.pages)
        username = field(form, "username", max_length=255).strip()
        password = field(form, "password")
        token = form.get("registration_token", "").strip()
        shown = {"username": username, "registration_token": token}
        if not password:
            return self._register_page(
                form_key, next_path, status=400, error="Choose a password.", **shown
            )
        if password != field(form, "password_confirm"):
            return self._register_page(
                form_key, next_path, status=400, error="The passwords do not match.", **shown
            )
        try:
            self._registration_limiter.check(req.ip or "")
            user_id = await self._accounts.check_username(username.lower())
            self._accounts.check_password(password)
            if self._token_required and not await self._registration_tokens.reserve(token):
                return self._register_page(
                    form_key,
                    next_path,
                    status=403,
                    error="This registration token is not valid.",
                    **shown,
                )
            await self._accounts.register(
                user_id, password, registration_token=token if self._token_required else None
            )
        except MatrixError as e:
            return self._register_page(
                form_key, next_path, status=e.status, error=e.message, **shown
            )
        response = redirect(next_path)
        await self._browsers.sign_in(response, user_id, "password")
        return response

    def _registration_closed(self) -> web.Response:
        return self.pages.error(
            403, "Registration is closed", "New accounts cannot be created on this server."
        )

    def _register_page(
        self,
        form_key: FormKey,
        next_path: str,
        *,
        status: int = 200,
        username: str = "",
        registration_token: str = "",
        error: str | None = None,
    ) -> web.Response:
        response = self.pages.page(
            "register.html",
            status,
            action=_with_next(REGISTER_PATH, next_path),
            csrf_token=form_key.token("register"),
            username=username,
            registration_token=registration_token,
            token_required=self._token_required,
            server_name=self._server_name,
            sign_in_url=_with_next(SIGN_IN_PATH, next_path),
            error=error,
        )
        self._form_keys.keep(response, form_key)
        return response

    @endpoint("POST", "/sign_out", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def sign_out(self, req: ClientRequest) -> web.StreamResponse:
        browser = await self._browsers.current(req.headers)
        if browser is None:
            return redirect(SIGN_IN_PATH)
        if not browser.check_csrf(SIGN_OUT_PURPOSE, read_form(req).get("csrf_token")):
            return csrf_failure(self.pages)
        response = redirect(SIGN_IN_PATH)
        await self._browsers.sign_out(req.headers, response)
        return response


def _sign_in_error(e: MatrixError) -> tuple[int, str]:
    """The status and message of the form shown again after a failed sign-in:
    one message for an unknown user and a wrong password alike."""
    if e.errcode == "M_LIMIT_EXCEEDED":
        return 429, "Too many attempts. Wait a minute and try again."
    if e.errcode == "M_USER_DEACTIVATED":
        return 403, "This account has been deactivated."
    if e.status in (400, 401, 403):
        return 401, _BAD_CREDENTIALS
    return e.status, e.message
