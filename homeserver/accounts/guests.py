"""Guest accounts: made without credentials, and upgraded to full accounts.

A guest gets a numeric user id (as Synapse's guests do) and an access token
that the router serves only on the endpoints the spec opens to guests. The
guest keeps its user id when it upgrades: it registers with its own localpart
as `username` and its token as `guest_access_token`.
"""

from __future__ import annotations

from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.errors import MatrixError, forbidden
from storage.guests import GuestStore
from storage.uia import RegistrationTokenStore
from storage.users import UserExistsError, UserStore


class GuestAccounts:
    def __init__(
        self,
        users: UserStore,
        guests: GuestStore,
        accounts: AccountService,
        sessions: SessionService,
        registration_tokens: RegistrationTokenStore,
        *,
        enabled: bool,
    ) -> None:
        self._users = users
        self._guests = guests
        self._accounts = accounts
        self._sessions = sessions
        self._registration_tokens = registration_tokens
        # New guests only: existing guests keep working and may still upgrade.
        self._enabled = enabled

    async def register(self, device_display_name: str | None, *, ip: str | None) -> Session:
        """A new guest account, logged in on a new device."""
        if not self._enabled:
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
        while True:
            user_id = await self._accounts.generate_user_id()
            try:
                await self._users.create_user(
                    user_id, None, is_guest=True, displayname=user_id[1:].partition(":")[0]
                )
            except UserExistsError:
                continue  # taken between the check and the insert: draw again
            break
        return await self._sessions.start_session(
            user_id, None, device_display_name, want_refresh=False, ip=ip
        )

    async def upgradable(
        self, username: str | None, guest_token: str, *, ip: str | None, user_agent: str | None
    ) -> str:
        """The user id an upgrade with this guest token keeps.

        403 unless the token is a live guest's and `username` (when given) is
        that guest's own localpart: nobody takes over another guest's account.
        """
        try:
            requester = await self._sessions.authenticate(guest_token, ip=ip, user_agent=user_agent)
        except MatrixError:
            requester = None
        if requester is None or not requester.is_guest:
            raise forbidden("guest_access_token is not a guest's access token")
        localpart = requester.user_id[1:].partition(":")[0]
        if username is not None and username.lower() != localpart:
            raise forbidden("Cannot register taken user ID without valid guest credentials")
        return requester.user_id

    async def upgrade(
        self, user_id: str, password_hash: str | None, *, registration_token: str | None
    ) -> None:
        """Turn the guest into a full account (logging in is the registration's).

        The guest's existing tokens stay valid, now with a full account's rights.
        """
        if not await self._guests.upgrade(user_id, password_hash):
            raise forbidden("This account is no longer a guest account")
        self._sessions.account_changed(user_id)
        if registration_token is not None:
            await self._registration_tokens.complete(registration_token)
