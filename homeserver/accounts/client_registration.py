"""POST /register as the spec's UIA describes it.

A registration spans several requests sharing one auth session. The session
keeps the parameters of the latest request that carried any (as Synapse
does), so a client may send them once and then only `auth`; the password is
kept as its hash, made once, from the first request that gave one. It also
records the account it created: a client that lost the response and retries
with the same session gets the same account back, logged in again, instead
of an error or a second account.
"""

from __future__ import annotations

from typing import Any

import attrs

from homeserver.accounts.guests import GuestAccounts
from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.accounts.threepids import AccountThreepids
from homeserver.email.validation import ValidatedAddress
from homeserver.uia import DUMMY, EMAIL_IDENTITY, REGISTRATION_TOKEN, UiaService
from storage.uia import REGISTERED_USER_KEY

# What a registration session keeps that no request may replace.
_SESSION_ONLY = frozenset({"password_hash", REGISTERED_USER_KEY})


@attrs.frozen
class RegistrationRequest:
    """What a POST /register asked for besides `auth`; None means not given."""

    username: str | None = None
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool | None = None
    refresh_token: bool | None = None
    # A guest upgrading to a full account keeps its user id.
    guest_access_token: str | None = None


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
        guests: GuestAccounts,
        *,
        requires_token: bool,
        emails: AccountThreepids | None = None,
        requires_email: bool = False,
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._uia = uia
        self._guests = guests
        self._flows = [[REGISTRATION_TOKEN] if requires_token else [DUMMY]]
        # With email configured, a validated address is offered (or required,
        # as Synapse's registrations_require_3pid) and added to the account.
        self._emails = emails
        if emails is not None:
            with_email = (
                [REGISTRATION_TOKEN, EMAIL_IDENTITY] if requires_token else [EMAIL_IDENTITY]
            )
            self._flows = [with_email] if requires_email else [*self._flows, with_email]

    async def register(
        self,
        request: RegistrationRequest,
        auth: Any,
        *,
        method: str,
        uri: str,
        ip: str | None,
        user_agent: str | None,
    ) -> Registered:
        stored = await self._uia.stored_params(auth)
        given = {
            key: value
            for key, value in attrs.asdict(request).items()
            if value is not None and key != "password"
        }
        # The request's parameters replace the session's, but for what the
        # session alone knows (the password's hash, the account made).
        params = stored
        if given:
            params = {k: v for k, v in stored.items() if k in _SESSION_ONLY} | given
        if REGISTERED_USER_KEY in params:
            # A retry of a completed registration: the session must still be
            # this operation's and complete, which authenticate checks. The
            # stage is not run again (a registration token would count twice).
            await self._uia.authenticate(
                {"session": auth["session"]},
                self._flows,
                method=method,
                uri=uri,
                params=params,
                keep_session=True,
            )
            return await self._log_in(params[REGISTERED_USER_KEY], params, ip)
        username = params.get("username")
        guest_token = params.get("guest_access_token")
        # A taken or invalid name is refused before any auth stage (and before
        # hashing the password), as clients expect; a guest keeps its own name.
        if guest_token is not None:
            user_id = await self._guests.upgradable(
                username, guest_token, ip=ip, user_agent=user_agent
            )
        else:
            user_id = await self._accounts.check_username(username.lower()) if username else None
        if request.password and "password_hash" not in params:
            # Like a taken name, a password the policy refuses fails at once.
            self._accounts.check_password(request.password)
            params = {
                **params,
                "password_hash": await self._accounts.hash_password(request.password),
            }
        result = await self._uia.authenticate(
            auth, self._flows, method=method, uri=uri, params=params, keep_session=True
        )
        registration_token = result.completed.get(REGISTRATION_TOKEN)
        if guest_token is not None:
            await self._guests.upgrade(
                user_id, params.get("password_hash"), registration_token=registration_token
            )
        else:
            if user_id is None:
                user_id = await self._accounts.generate_user_id()
            await self._accounts.create(
                user_id, params.get("password_hash"), registration_token=registration_token
            )
        email = result.completed.get(EMAIL_IDENTITY)
        if email is not None and self._emails is not None:
            await self._emails.add_at_registration(user_id, ValidatedAddress(**email))
        await self._uia.remember(result.session_id, {REGISTERED_USER_KEY: user_id})
        return await self._log_in(user_id, params, ip)

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
