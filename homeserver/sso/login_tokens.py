"""m.login.token: the short-lived, single-use tokens that legacy single
sign-on (and MSC3882's /login/get_token) hand a client to log in with, and
the login that redeems them.

Only a SHA-256 of a token is stored, and it is deleted as it is redeemed. A
token from an upstream sign-in carries that sign-in (provider, subject,
session id) to the device it creates, so a back-channel logout ends it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from homeserver.accounts.sessions import Session, SessionService
from homeserver.errors import MatrixError, forbidden
from homeserver.sso.upstream import UpstreamSignIn
from storage.login_tokens import LoginTokenStore
from storage.upstream import SignInRecord
from storage.users import UserStore

# As Synapse's login tokens: two minutes.
LOGIN_TOKEN_LIFETIME_MS = 2 * 60 * 1000


class TokenLogin:
    def __init__(
        self,
        store: LoginTokenStore,
        users: UserStore,
        sessions: SessionService,
        upstream: UpstreamSignIn,
        *,
        get_login_token_enabled: bool,
    ) -> None:
        self._store = store
        self._users = users
        self._sessions = sessions
        self._upstream = upstream
        self.get_login_token_enabled = get_login_token_enabled

    def login_flows(self) -> list[dict[str, Any]]:
        """What GET /login adds: as Synapse, m.login.sso (with the providers)
        and m.login.token when single sign-on is configured, m.login.token
        alone when only /login/get_token can issue tokens."""
        flows: list[dict[str, Any]] = []
        if self._upstream.enabled:
            providers = []
            for p in self._upstream.providers():
                idp: dict[str, Any] = {"id": p.idp_id, "name": p.config.idp_name}
                if p.config.idp_icon is not None:
                    idp["icon"] = p.config.idp_icon
                if p.config.idp_brand is not None:
                    idp["brand"] = p.config.idp_brand
                providers.append(idp)
            flows.append({"type": "m.login.sso", "identity_providers": providers})
        if self._upstream.enabled or self.get_login_token_enabled:
            token_flow: dict[str, Any] = {"type": "m.login.token"}
            if self.get_login_token_enabled:
                token_flow["get_login_token"] = True
            flows.append(token_flow)
        return flows

    async def issue(self, user_id: str, origin: SignInRecord | None) -> str:
        token = "mlt_" + secrets.token_urlsafe(32)
        now = _now_ms()
        await self._store.add(
            _digest(token),
            user_id,
            now + LOGIN_TOKEN_LIFETIME_MS,
            origin.idp_id if origin else None,
            origin.sub if origin else None,
            origin.sid if origin else None,
            now,
        )
        return token

    async def login(
        self,
        token: Any,
        device_id: str | None,
        display_name: str | None,
        *,
        want_refresh: bool,
        ip: str | None,
    ) -> Session:
        """POST /login with m.login.token: the token is spent whatever happens next."""
        if not isinstance(token, str) or not token:
            raise MatrixError(400, "M_MISSING_PARAM", "'token' is required")
        record = await self._store.take(_digest(token))
        if record is None or record.expires_ts <= _now_ms():
            raise forbidden("Invalid or expired login token")
        user = await self._users.get_user(record.user_id)
        if user is None or user.deactivated:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        if user.locked:
            raise MatrixError(401, "M_USER_LOCKED", "This account has been locked")
        session = await self._sessions.start_session(
            record.user_id, device_id, display_name, want_refresh=want_refresh, ip=ip
        )
        if record.idp_id is not None and record.sub is not None:
            origin = SignInRecord(record.idp_id, record.sub, record.sid, record.user_id)
            await self._upstream.device_created(record.user_id, session.device_id, origin)
        return session


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _now_ms() -> int:
    return int(time.time() * 1000)
