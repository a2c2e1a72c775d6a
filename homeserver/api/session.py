"""Registration, login, token refresh and logout."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.client_registration import ClientRegistration, RegistrationRequest
from homeserver.accounts.guests import GuestAccounts
from homeserver.accounts.login import PasswordChecker, identifier_user
from homeserver.accounts.password_reset import PasswordReset
from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.accounts.threepids import AccountThreepids, identified_user
from homeserver.api.http import CLIENT_V1, Authenticator, ClientRequest, endpoint
from homeserver.api.params import opt_bool, opt_str, req_str
from homeserver.api.threepids import opt_id_server
from homeserver.appservice.accounts import APPSERVICE_LOGIN_TYPE, AppServiceAccounts
from homeserver.errors import MatrixError, bad_json, forbidden, missing_param
from homeserver.identity.bindings import ThreepidBindings
from homeserver.oauth.refresh_reuse import LegacyRefreshGuard
from homeserver.ratelimit import RateLimiter
from homeserver.sso.login_tokens import TokenLogin
from homeserver.uia import UiaService
from storage.uia import RegistrationTokenStore


def _opt_bool_or_none(body: dict[str, Any], key: str) -> bool | None:
    return opt_bool(body, key, False) if key in body else None


def session_json(session: Session, server_name: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": session.user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
        "home_server": server_name,
    }
    if session.refresh_token is not None:
        body["refresh_token"] = session.refresh_token
        body["expires_in_ms"] = session.expires_in_ms
    return body


class SessionApi:
    def __init__(
        self,
        *,
        server_name: str,
        accounts: AccountService,
        guests: GuestAccounts,
        sessions: SessionService,
        passwords: PasswordChecker,
        uia: UiaService,
        registration_tokens: RegistrationTokenStore,
        login_account_limiter: RateLimiter,
        enable_registration: bool,
        threepids: ThreepidBindings,
        registration: ClientRegistration,
        appservices: AppServiceAccounts | None = None,
        token_login: TokenLogin | None = None,
        oauth_enabled: bool = False,
        password_registration: bool = True,
        legacy_refresh: LegacyRefreshGuard,
        account_threepids: AccountThreepids | None = None,
        password_reset: PasswordReset | None = None,
    ) -> None:
        # Email addresses of accounts: login with m.id.thirdparty, and the
        # password reset by email (None: no email configured).
        self._account_threepids = account_threepids
        self._password_reset = password_reset
        # m.login.sso and m.login.token (homeserver/sso/login_tokens.py).
        self._token_login = token_login
        self._server_name = server_name
        self._accounts = accounts
        self._guests = guests
        self._sessions = sessions
        self._passwords = passwords
        self._uia = uia
        self._registration_tokens = registration_tokens
        self._login_account_limiter = login_account_limiter
        self._enable_registration = enable_registration
        self._threepids = threepids
        self._registration = registration
        self._appservices = appservices
        # The OAuth 2.0 API is on (homeserver/oauth): see login_flows and register.
        self._oauth_enabled = oauth_enabled
        self._password_registration = password_registration
        # Refuses the OAuth server's refresh tokens (homeserver/oauth/refresh_reuse.py).
        self._legacy_refresh = legacy_refresh

    @endpoint("POST", "/register", auth=False, ratelimit="registration")
    async def register(self, req: ClientRequest) -> dict[str, Any]:
        kind = req.query.get("kind", "user")
        if kind == "guest":
            # As Synapse: a guest registers without auth stages or a user name.
            display_name = opt_str(req.json(), "initial_device_display_name")
            return session_json(
                await self._guests.register(display_name, ip=req.ip), self._server_name
            )
        if kind != "user":
            raise MatrixError(400, "M_INVALID_PARAM", "kind must be 'user' or 'guest'")
        if self._appservices is not None and req.json().get("type") == APPSERVICE_LOGIN_TYPE:
            return await self._register_appservice_user(req, self._appservices)
        if not self._enable_registration:
            raise forbidden("Registration has been disabled")
        if not self._password_registration:
            # As Synapse with OAuth delegated: accounts are created through
            # the OAuth 2.0 API (prompt=create, MSC4254).
            raise forbidden("Registration is done through the OAuth 2.0 API (prompt=create)")
        body = req.json()
        request = RegistrationRequest(
            username=opt_str(body, "username"),
            password=opt_str(body, "password"),
            device_id=opt_str(body, "device_id"),
            initial_device_display_name=opt_str(body, "initial_device_display_name"),
            inhibit_login=_opt_bool_or_none(body, "inhibit_login"),
            refresh_token=_opt_bool_or_none(body, "refresh_token"),
            guest_access_token=opt_str(body, "guest_access_token"),
        )
        registered = await self._registration.register(
            request,
            body.get("auth"),
            method=req.method,
            uri=req.path,
            ip=req.ip,
            user_agent=req.user_agent,
        )
        if registered.session is None:
            return {"user_id": registered.user_id, "home_server": self._server_name}
        return session_json(registered.session, self._server_name)

    async def _register_appservice_user(
        self, req: ClientRequest, appservices: AppServiceAccounts
    ) -> dict[str, Any]:
        """An appservice creating a user of its namespace: no UIA, open even
        where registration is closed."""
        service = appservices.service_for_token(Authenticator.token_of(req))
        body = req.json()
        user_id, session = await appservices.register(
            service,
            opt_str(body, "username"),
            inhibit_login=opt_bool(body, "inhibit_login", False),
            device_id=opt_str(body, "device_id"),
            display_name=opt_str(body, "initial_device_display_name"),
            want_refresh=opt_bool(body, "refresh_token", False),
            ip=req.ip,
        )
        if session is None:
            return {"user_id": user_id, "home_server": self._server_name}
        return session_json(session, self._server_name)

    @endpoint("GET", "/register/available", auth=False, ratelimit="registration")
    async def register_available(self, req: ClientRequest) -> dict[str, Any]:
        username = req.query.get("username")
        if username is None:
            raise missing_param("'username' is required")
        await self._accounts.check_username(username.lower())
        return {"available": True}

    @endpoint(
        "GET",
        "/register/m.login.registration_token/validity",
        auth=False,
        prefixes=CLIENT_V1,
        ratelimit="registration",
    )
    async def registration_token_validity(self, req: ClientRequest) -> dict[str, Any]:
        token = req.query.get("token")
        if token is None:
            raise missing_param("'token' is required")
        return {"valid": await self._registration_tokens.is_valid(token)}

    @endpoint("GET", "/login", auth=False)
    async def login_flows(self, req: ClientRequest) -> dict[str, Any]:
        flows: list[dict[str, Any]] = [{"type": "m.login.password"}]
        if self._token_login is not None:
            flows += self._token_login.login_flows()
        # Offered where some appservice is registered (Synapse offers it always).
        if self._appservices is not None and self._appservices.any_registered():
            flows.append({"type": APPSERVICE_LOGIN_TYPE})
        if self._oauth_enabled:
            # The spec's (v1.15, MSC3824) sign for OAuth-aware clients that
            # the server prefers the OAuth 2.0 API, on its m.login.sso flow.
            for flow in flows:
                if flow["type"] == "m.login.sso":
                    flow["oauth_aware_preferred"] = True
        return {"flows": flows}

    @endpoint("POST", "/login", auth=False, ratelimit="login")
    async def login(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        login_type = req_str(body, "type")
        if login_type == APPSERVICE_LOGIN_TYPE and self._appservices is not None:
            service = self._appservices.service_for_token(Authenticator.token_of(req))
            session = await self._appservices.login(
                service,
                identifier_user(body, self._server_name),
                device_id=opt_str(body, "device_id"),
                display_name=opt_str(body, "initial_device_display_name"),
                want_refresh=opt_bool(body, "refresh_token", False),
                ip=req.ip,
            )
            return session_json(session, self._server_name)
        if login_type == "m.login.token" and self._token_login is not None:
            session = await self._token_login.login(
                body.get("token"),
                opt_str(body, "device_id"),
                opt_str(body, "initial_device_display_name"),
                want_refresh=opt_bool(body, "refresh_token", False),
                ip=req.ip,
            )
            return session_json(session, self._server_name)
        if login_type != "m.login.password":
            raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {login_type!r}")
        user_id = await identified_user(body, self._server_name, self._account_threepids)
        self._login_account_limiter.check(user_id.lower())
        device_id = opt_str(body, "device_id")
        display_name = opt_str(body, "initial_device_display_name")
        want_refresh = opt_bool(body, "refresh_token", False)
        user = await self._passwords.check(user_id, body.get("password"))
        if user.locked:
            raise MatrixError(401, "M_USER_LOCKED", "This account has been locked")
        session = await self._sessions.start_session(
            user.user_id, device_id, display_name, want_refresh=want_refresh, ip=req.ip
        )
        return session_json(session, self._server_name)

    @endpoint("POST", "/refresh", auth=False, prefixes=("/_matrix/client/v3", *CLIENT_V1))
    async def refresh(self, req: ClientRequest) -> dict[str, Any]:
        token = req_str(req.json(), "refresh_token")
        await self._legacy_refresh.check(token)
        session = await self._sessions.refresh(token)
        return {
            "access_token": session.access_token,
            "refresh_token": session.refresh_token,
            "expires_in_ms": session.expires_in_ms,
        }

    @endpoint("POST", "/logout", allow_locked=True)
    async def logout(self, req: ClientRequest) -> dict[str, Any]:
        await self._sessions.logout(req.user)
        return {}

    @endpoint("POST", "/logout/all", allow_locked=True)
    async def logout_all(self, req: ClientRequest) -> dict[str, Any]:
        await self._sessions.delete_all_devices(req.user.user_id)
        return {}

    @endpoint("POST", "/account/password", auth=False, optional_auth=True)
    async def change_password(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        new_password = req_str(body, "new_password")
        if not new_password:
            raise MatrixError(400, "M_WEAK_PASSWORD", "The new password must not be empty")
        logout_devices = opt_bool(body, "logout_devices", True)
        if req.requester is None:
            if self._password_reset is None:
                raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
            await self._password_reset.reset(
                body.get("auth"),
                new_password,
                logout_devices=logout_devices,
                method=req.method,
                uri=req.path,
            )
            return {}
        await self._passwords.ensure_changeable(req.user.user_id)
        # Refused before user-interactive auth, so the client can ask again.
        self._accounts.check_password(new_password)
        await self._uia.authenticate(
            body.get("auth"),
            [["m.login.password"]],
            method=req.method,
            uri=req.path,
            user_id=req.user.user_id,
        )
        await self._accounts.change_password(
            req.user.user_id,
            new_password,
            keep_device=req.user.device_id,
            logout_devices=logout_devices,
        )
        return {}

    @endpoint("POST", "/account/deactivate")
    async def deactivate(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        if "erase" in body and not isinstance(body["erase"], bool):
            raise bad_json("'erase' must be true or false")
        # As Synapse: an appservice deactivates its users without UIA.
        if req.user.app_service_id is None:
            await self._uia.authenticate(
                body.get("auth"),
                [["m.login.password"]],
                method=req.method,
                uri=req.path,
                user_id=req.user.user_id,
            )
        # Checked, not used: every binding made through us is unbound, on
        # the identity server it was made on.
        opt_id_server(body)
        unbind_result = await self._threepids.unbind_all(req.user.user_id)
        if self._account_threepids is not None:
            await self._account_threepids.remove_all(req.user.user_id)
        await self._accounts.deactivate(req.user.user_id, erase=body.get("erase", False))
        return {"id_server_unbind_result": unbind_result}

    @endpoint("GET", "/account/whoami", guest_ok=True)
    async def whoami(self, req: ClientRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": req.user.user_id, "is_guest": req.user.is_guest}
        # An appservice acting without ?device_id= has no device (MSC4326).
        if req.user.device_id:
            body["device_id"] = req.user.device_id
        return body
