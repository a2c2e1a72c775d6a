"""The account page: the OAuth `account_management_uri` (MSC4191).

Clients deep-link into it with `?action=` (the spec's stable names and the
unstable `org.matrix.session_*` ones Element X still sends). Every change
goes through the service the client API uses for it, so signing a device
out here is a real logout, a new display name reaches the user's rooms, and
a deactivation is the same as POST /account/deactivate.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode

from aiohttp import web

from homeserver.accounts.login import PasswordChecker
from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import SessionService
from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.web_forms import (
    WEB_PREFIXES,
    csrf_failure,
    field,
    html_errors,
    query_arg,
    read_form,
)
from homeserver.api.web_sign_in import SIGN_OUT_PATH, SIGN_OUT_PURPOSE
from homeserver.errors import MatrixError
from homeserver.identity.bindings import ThreepidBindings
from homeserver.profile import MAX_DISPLAYNAME_LENGTH, ProfileService
from homeserver.web.browser_sessions import BrowserSession, BrowserSessions
from homeserver.web.grants_protocol import OAuthGrants
from homeserver.web.links import DEFAULT_NEXT, sign_in_url
from homeserver.web.pages import PageRenderer, redirect

ACCOUNT_PATH = DEFAULT_NEXT
PATHS = {
    "displayname": ACCOUNT_PATH + "/displayname",
    "device_sign_out": ACCOUNT_PATH + "/devices/sign_out",
    "password": ACCOUNT_PATH + "/password",
    "deactivate": ACCOUNT_PATH + "/deactivate",
    "cross_signing_reset": ACCOUNT_PATH + "/cross_signing_reset",
    "sign_out": SIGN_OUT_PATH,
    "devices_list": ACCOUNT_PATH + "?action=org.matrix.devices_list",
}
# The forms of the page, each with its own CSRF token.
_FORMS = ("displayname", "device_sign_out", "password", "deactivate", "cross_signing_reset")

# The actions of the spec's account_management_actions_supported (and the
# unstable spellings of MSC4191 that clients still send) -> sections shown.
ACTIONS = {
    "org.matrix.profile": ("profile",),
    "org.matrix.devices_list": ("devices",),
    "org.matrix.sessions_list": ("devices",),
    "org.matrix.device_view": ("devices",),
    "org.matrix.session_view": ("devices",),
    "org.matrix.device_delete": ("devices",),
    "org.matrix.session_end": ("devices",),
    "org.matrix.account_deactivate": ("deactivate",),
    "org.matrix.cross_signing_reset": ("cross_signing_reset",),
}
_ONE_DEVICE_ACTIONS = frozenset(
    {
        "org.matrix.device_view",
        "org.matrix.session_view",
        "org.matrix.device_delete",
        "org.matrix.session_end",
    }
)

# What a redirect after a change says; the query names one of these, so no
# text from a URL is ever shown on the page.
NOTICES = {
    "displayname": "Your display name was saved.",
    "device_signed_out": "The device was signed out.",
    "password": "Your password was changed. Your devices were signed out.",
    "cross_signing_reset": (
        "The reset is allowed for a few minutes: go back to your client and finish it there."
    ),
}


def _notice_url(notice: str) -> str:
    return f"{ACCOUNT_PATH}?{urlencode({'notice': notice})}"


def _format_ts(ts: int | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts / 1000))


class AccountPages:
    def __init__(
        self,
        *,
        pages: PageRenderer,
        browser_sessions: BrowserSessions,
        sessions: SessionService,
        profiles: ProfileService,
        accounts: AccountService,
        passwords: PasswordChecker,
        threepids: ThreepidBindings,
        grants: OAuthGrants | None,
    ) -> None:
        self.pages = pages
        self._browsers = browser_sessions
        self._sessions = sessions
        self._profiles = profiles
        self._accounts = accounts
        self._passwords = passwords
        self._threepids = threepids
        self._grants = grants

    @endpoint("GET", "/account", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def account(self, req: ClientRequest) -> web.StreamResponse:
        browser = await self._browsers.current(req.headers)
        if browser is None:
            return redirect(sign_in_url(req.path + _query_string(req)))
        action = query_arg(req, "action")
        device_id = query_arg(req, "device_id")
        notice = NOTICES.get(query_arg(req, "notice") or "")
        if action == "org.matrix.cross_signing_reset" and self._grants is None:
            return self.pages.error(
                404, "Not available", "Cross-signing resets are approved by your client here."
            )
        if action in _ONE_DEVICE_ACTIONS:
            if not device_id:
                return self.pages.error(400, "Which device?", "The link names no device.")
            return await self._page(browser, ("devices",), only_device=device_id, notice=notice)
        sections = ACTIONS.get(action or "")
        return await self._page(browser, sections, notice=notice)

    async def _page(
        self,
        browser: BrowserSession,
        sections: tuple[str, ...] | None,
        *,
        only_device: str | None = None,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
    ) -> web.Response:
        """The account page, with only `sections` (None: all of them)."""
        user_id = browser.user_id
        has_password = await self._accounts.has_password(user_id)
        if sections is None:
            sections = ("profile", "devices", "deactivate")
            if has_password:
                sections += ("password",)
        if "password" in sections and not has_password:
            sections = tuple(s for s in sections if s != "password")
        if only_device is not None:
            devices = [await self._sessions.get_device(user_id, only_device)]
        elif "devices" in sections:
            devices = await self._sessions.list_devices(user_id)
        else:
            devices = []
        clients = await self._oauth_clients(user_id) if devices else {}
        displayname = ""
        if "profile" in sections:
            displayname = (await self._profiles.get_profile(user_id)).get("displayname") or ""
        return self.pages.page(
            "account.html",
            status,
            user_id=user_id,
            sections=sections,
            notice=notice,
            error=error,
            displayname=displayname,
            single_device=only_device is not None,
            devices=[
                {
                    "device_id": d.device_id,
                    "display_name": d.display_name,
                    "last_seen": _format_ts(d.last_seen_ts),
                    "last_seen_ip": d.last_seen_ip,
                    "client": clients.get(d.device_id),
                }
                for d in devices
            ],
            has_password=has_password,
            deactivate_phrase=_deactivate_phrase(user_id),
            paths=PATHS,
            sign_out_csrf=browser.csrf_token(SIGN_OUT_PURPOSE),
            csrf={name: browser.csrf_token(_purpose(name)) for name in _FORMS},
        )

    async def _oauth_clients(self, user_id: str) -> dict[str, str]:
        """The name of the OAuth client each device signed in with, where
        it has one (the device list itself comes from the sessions service)."""
        if self._grants is None:
            return {}
        return {
            s.device_id: s.client_name[:100]
            for s in await self._grants.sessions(user_id)
            if s.client_name
        }

    async def _signed_in_form(
        self, req: ClientRequest, name: str
    ) -> tuple[BrowserSession, dict[str, str]] | web.Response:
        """The browser and form of a POST to the account page, or the
        response refusing it (not signed in, bad CSRF token)."""
        browser = await self._browsers.current(req.headers)
        if browser is None:
            return redirect(sign_in_url(ACCOUNT_PATH))
        form = read_form(req)
        if not browser.check_csrf(_purpose(name), form.get("csrf_token")):
            return csrf_failure(self.pages)
        return browser, form

    @endpoint("POST", "/account/displayname", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def set_displayname(self, req: ClientRequest) -> web.StreamResponse:
        checked = await self._signed_in_form(req, "displayname")
        if isinstance(checked, web.Response):
            return checked
        browser, form = checked
        name = field(form, "displayname", max_length=MAX_DISPLAYNAME_LENGTH).strip()
        await self._profiles.set_field(
            browser.user_id, browser.user_id, "displayname", name or None
        )
        return redirect(_notice_url("displayname"))

    @endpoint("POST", "/account/devices/sign_out", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def sign_out_device(self, req: ClientRequest) -> web.StreamResponse:
        checked = await self._signed_in_form(req, "device_sign_out")
        if isinstance(checked, web.Response):
            return checked
        browser, form = checked
        device_id = field(form, "device_id", max_length=255)
        await self._sessions.get_device(browser.user_id, device_id)
        if self._grants is not None:
            await self._grants.end_session(browser.user_id, device_id)
        await self._sessions.delete_devices(browser.user_id, [device_id])
        return redirect(_notice_url("device_signed_out"))

    @endpoint("POST", "/account/password", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def change_password(self, req: ClientRequest) -> web.StreamResponse:
        checked = await self._signed_in_form(req, "password")
        if isinstance(checked, web.Response):
            return checked
        browser, form = checked
        user_id = browser.user_id
        if not await self._accounts.has_password(user_id):
            return self.pages.error(
                403, "Not available", "Your account has no password on this server."
            )
        current = field(form, "current_password")
        new = field(form, "new_password")
        error = None
        if not new:
            error = "Choose a new password."
        elif new != field(form, "new_password_confirm"):
            error = "The new passwords do not match."
        elif (refused := self._policy_refusal(new)) is not None:
            error = refused
        else:
            try:
                await self._passwords.check(user_id, current)
            except MatrixError:
                error = "Your current password is not right."
        if error is not None:
            return await self._page(browser, ("password",), status=400, error=error)
        # The spec's logout_devices default: every device signs in again, and
        # so does every other browser.
        await self._accounts.change_password(user_id, new, keep_device=None, logout_devices=True)
        await self._browsers.sign_out_user(user_id)
        response = redirect(_notice_url("password"))
        await self._browsers.sign_in(response, user_id, browser.authenticated_by)
        return response

    def _policy_refusal(self, password: str) -> str | None:
        """Why the password policy refuses `password`, or None."""
        try:
            self._accounts.check_password(password)
        except MatrixError as e:
            return e.message
        return None

    @endpoint("POST", "/account/deactivate", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def deactivate(self, req: ClientRequest) -> web.StreamResponse:
        checked = await self._signed_in_form(req, "deactivate")
        if isinstance(checked, web.Response):
            return checked
        browser, form = checked
        user_id = browser.user_id
        error = None
        if field(form, "confirm", max_length=300).strip() != _deactivate_phrase(user_id):
            error = "Type the confirmation exactly as shown to deactivate your account."
        elif await self._accounts.has_password(user_id):
            try:
                await self._passwords.check(user_id, field(form, "password"))
            except MatrixError:
                error = "Your password is not right."
        if error is not None:
            return await self._page(browser, ("deactivate",), status=400, error=error)
        # The same steps as POST /account/deactivate (api/session.py).
        await self._threepids.unbind_all(user_id)
        await self._accounts.deactivate(user_id)
        response = self.pages.page(
            "done.html",
            title="Account deactivated",
            message="Your account was deactivated and all its devices were signed out.",
        )
        await self._browsers.sign_out(req.headers, response)
        await self._browsers.sign_out_user(user_id)
        return response

    @endpoint("POST", "/account/cross_signing_reset", auth=False, prefixes=WEB_PREFIXES)
    @html_errors
    async def allow_cross_signing_reset(self, req: ClientRequest) -> web.StreamResponse:
        checked = await self._signed_in_form(req, "cross_signing_reset")
        if isinstance(checked, web.Response):
            return checked
        browser, _ = checked
        if self._grants is None:
            return self.pages.error(
                404, "Not available", "Cross-signing resets are approved by your client here."
            )
        await self._grants.approve_cross_signing_reset(browser.user_id)
        return redirect(_notice_url("cross_signing_reset"))


def _purpose(name: str) -> str:
    return f"account.{name}"


def _deactivate_phrase(user_id: str) -> str:
    """What the person types to confirm: their own user name."""
    return user_id[1:].partition(":")[0]


def _query_string(req: ClientRequest) -> str:
    if not req.query:
        return ""
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in req.query.items())
