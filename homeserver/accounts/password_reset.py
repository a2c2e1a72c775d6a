"""Resetting a forgotten password: POST /account/password without a login,
authenticated by an email address of the account that this server validated
(the m.login.email.identity stage)."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.login import PasswordChecker
from homeserver.accounts.registration import AccountService
from homeserver.accounts.threepids import AccountThreepids
from homeserver.errors import MatrixError
from homeserver.uia import EMAIL_IDENTITY, UiaService


class PasswordReset:
    def __init__(
        self,
        uia: UiaService,
        threepids: AccountThreepids,
        accounts: AccountService,
        passwords: PasswordChecker,
    ) -> None:
        self._uia = uia
        self._threepids = threepids
        self._accounts = accounts
        self._passwords = passwords

    async def reset(
        self, auth: Any, new_password: str, *, logout_devices: bool, method: str, uri: str
    ) -> None:
        result = await self._uia.authenticate(auth, [[EMAIL_IDENTITY]], method=method, uri=uri)
        email = result.completed[EMAIL_IDENTITY]
        user_id = await self._threepids.owner(email["medium"], email["address"])
        if user_id is None:
            raise MatrixError(400, "M_THREEPID_NOT_FOUND", "No account has this email address")
        await self._passwords.ensure_changeable(user_id)
        # Every device is logged out unless the client asked otherwise: who
        # forgot the password may not be the only one who had it.
        await self._accounts.change_password(
            user_id, new_password, keep_device=None, logout_devices=logout_devices
        )
