"""Locking and suspending accounts: the spec's admin endpoints (v1.18,
MSC4323), Synapse's `/_synapse/admin/v1/suspend`, and the
`m.account_moderation` capability.

Both flags live in the `users` row (one storage for each, also behind the
admin API's PUT /v2/users `locked`) and travel with the access token lookup,
so a change must drop that user's cached tokens (`account_changed`) for the
next request to see it. What a locked account gets is decided where tokens
are resolved (accounts/sessions.py); what a suspended one may not do, in
accounts/suspension.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from homeserver.accounts.sessions import SessionService
from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.identifiers import split_user_id
from homeserver.requester import Requester
from storage.admin_users import AdminUserStore
from storage.users import UserRecord, UserStore

Flag = Literal["locked", "suspended"]


class AccountModeration:
    def __init__(
        self,
        users: UserStore,
        store: AdminUserStore,
        sessions: SessionService,
        *,
        server_name: str,
        on_change: Sequence[Callable[[str], None]] = (),
    ) -> None:
        # Others remembering the flags (appservice users' Requesters).
        self._on_change = on_change
        self._users = users
        self._store = store
        self._sessions = sessions
        self._server_name = server_name

    async def capability(self, requester: Requester) -> dict[str, bool] | None:
        """`m.account_moderation` for /capabilities: omitted (None) unless
        the requester may use the endpoints, i.e. is a server admin."""
        user = await self._users.get_user(requester.user_id)
        if user is None or not user.admin:
            return None
        return {"suspend": True, "lock": True}

    async def _target(self, requester: Requester, user_id: str, *, change: bool) -> UserRecord:
        """The account an admin (checked by the Router before this) acts on,
        with MSC4323's errors: 400 M_INVALID_PARAM for another server's user,
        404 for an unknown or deactivated one, 403 for another admin or, for
        a change, oneself."""
        parts = split_user_id(user_id)
        if parts is None or parts[1] != self._server_name:
            raise invalid_param("User does not belong to the local server")
        user = await self._users.get_user(user_id)
        if user is None or user.deactivated:
            raise not_found("User not found")
        if user_id == requester.user_id:
            if change:
                raise forbidden("You cannot change this for your own account")
        elif user.admin:
            raise forbidden("The user is a server administrator")
        return user

    async def status(self, requester: Requester, user_id: str, flag: Flag) -> bool:
        user = await self._target(requester, user_id, change=False)
        return bool(getattr(user, flag))

    async def set_status(self, requester: Requester, user_id: str, flag: Flag, value: bool) -> bool:
        await self._target(requester, user_id, change=True)
        await self.set_flag(user_id, flag, value)
        return value

    async def set_flag(self, user_id: str, flag: Flag, value: bool) -> None:
        """Store the flag and make every session of the user see it at once."""
        await self._store.set_flag(user_id, flag, value)
        self._sessions.account_changed(user_id)
        for changed in self._on_change:
            changed(user_id)

    async def admin_api_suspend(self, user_id: str, suspend: bool) -> None:
        """Synapse's admin API: any local, existing account (no MSC4323 limits)."""
        parts = split_user_id(user_id)
        if parts is None or parts[1] != self._server_name:
            raise invalid_param("Can only suspend local users")
        if await self._users.get_user(user_id) is None:
            raise not_found("User not found")
        await self.set_flag(user_id, "suspended", suspend)
