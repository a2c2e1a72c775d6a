"""POST /register as the spec's UIA describes it.

A registration spans several requests sharing one auth session. The session
keeps the parameters of the first request that carried any (the password
only as its hash), so a client may send them once and then only `auth`. It
also records the account it created: a client that lost the response and
retries with the same session gets the same account back, logged in again,
instead of an error or a second account.
"""

from __future__ import annotations

from typing import Any

import attrs

from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.uia import DUMMY, REGISTRATION_TOKEN, UiaService
from storage.uia import REGISTERED_USER_KEY


@attrs.frozen
class RegistrationRequest:
    """What a POST /register asked for besides `auth`; None means not given."""

    username: str | None = None
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool | None = None
    refresh_token: bool | None = None

    def is_empty(self) -> bool:
        return all(value is None for value in attrs.astuple(self))


@attrs.frozen
class Registered:
    """The account, and its new login unless the client inhibited it."""

    user_id: str
    session: Session | None


class ClientRegistration:
    def __init__(
        self,
        accounts: AccountService,
        sessions: SessionService,
        uia: UiaService,
        *,
        requires_token: bool,
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._uia = uia
        self._flows = [[REGISTRATION_TOKEN] if requires_token else [DUMMY]]

    async def register(
        self, request: RegistrationRequest, auth: Any, *, method: str, uri: str, ip: str | None
    ) -> Registered:
        stored = await self._uia.stored_params(auth)
        if REGISTERED_USER_KEY in stored:
            # A retry of a completed registration: the session must still be
            # this operation's and complete, which authenticate checks. The
            # stage is not run again (a registration token would count twice).
            await self._uia.authenticate(
                {"session": auth["session"]},
                self._flows,
                method=method,
                uri=uri,
                keep_session=True,
            )
            return await self._log_in(stored[REGISTERED_USER_KEY], stored, ip)
        username = stored.get("username") if stored else request.username
        # A taken or invalid name is refused before any auth stage (and before
        # hashing the password), as clients expect.
        user_id = await self._accounts.check_username(username.lower()) if username else None
        params = stored or await self._params_of(request)
        result = await self._uia.authenticate(
            auth, self._flows, method=method, uri=uri, params=params, keep_session=True
        )
        params = result.params or params
        if user_id is None:
            user_id = await self._accounts.generate_user_id()
        await self._accounts.create(
            user_id,
            params.get("password_hash"),
            registration_token=result.completed.get(REGISTRATION_TOKEN),
        )
        await self._uia.remember(result.session_id, {REGISTERED_USER_KEY: user_id})
        return await self._log_in(user_id, params, ip)

    async def _params_of(self, request: RegistrationRequest) -> dict[str, Any]:
        """The request's parameters as a session keeps them: the password hashed."""
        if request.is_empty():
            return {}
        params: dict[str, Any] = {
            key: value
            for key, value in attrs.asdict(request).items()
            if value is not None and key != "password"
        }
        if request.password:
            params["password_hash"] = await self._accounts.hash_password(request.password)
        return params

    async def _log_in(self, user_id: str, params: dict[str, Any], ip: str | None) -> Registered:
        if params.get("inhibit_login"):
            return Registered(user_id, None)
        session = await self._sessions.start_session(
            user_id,
            params.get("device_id"),
            params.get("initial_device_display_name"),
            want_refresh=bool(params.get("refresh_token")),
            ip=ip,
        )
        return Registered(user_id, session)
