"""Creating accounts, changing passwords and deactivating accounts."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from homeserver.accounts.password_policy import PasswordPolicy
from homeserver.accounts.passwords import PasswordHasher
from homeserver.accounts.sessions import SessionService
from homeserver.config import PasswordPolicyConfig
from homeserver.errors import MatrixError
from homeserver.identifiers import MAX_USER_ID_LENGTH, is_valid_localpart, user_id_for
from storage.uia import RegistrationTokenStore
from storage.users import UserExistsError, UserStore


class AccountService:
    def __init__(
        self,
        users: UserStore,
        sessions: SessionService,
        hasher: PasswordHasher,
        registration_tokens: RegistrationTokenStore,
        server_name: str,
        *,
        reserved: Callable[[str], bool] | None = None,
        password_policy: PasswordPolicy | None = None,
    ) -> None:
        self._users = users
        # Applied to the passwords users choose (registration, changes).
        self._policy = password_policy or PasswordPolicy(PasswordPolicyConfig())
        # User ids an application service holds exclusively.
        self._reserved = reserved
        self._sessions = sessions
        self._hasher = hasher
        self._registration_tokens = registration_tokens
        self._server_name = server_name

    async def check_username(self, localpart: str, *, for_appservice: bool = False) -> str:
        """The user id for a wanted name, or the 400 that says why it cannot be had.

        Names in an appservice's exclusive namespace are its alone
        (M_EXCLUSIVE); it checks its own namespace itself (`for_appservice`).
        """
        if not localpart or not is_valid_localpart(localpart):
            raise MatrixError(
                400,
                "M_INVALID_USERNAME",
                "User names may only contain a-z, 0-9, and the characters . _ = - / +",
            )
        user_id = user_id_for(localpart, self._server_name)
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise MatrixError(400, "M_INVALID_USERNAME", "User name is too long")
        if not for_appservice and self._reserved is not None and self._reserved(user_id):
            raise MatrixError(
                400, "M_EXCLUSIVE", "This user id is reserved by an application service"
            )
        if await self._users.get_user(user_id) is not None:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken")
        return user_id

    async def generate_user_id(self) -> str:
        """A free numeric user id, for clients that register without a name."""
        while True:
            candidate = user_id_for(str(secrets.randbelow(10**9)), self._server_name)
            if await self._users.get_user(candidate) is None:
                return candidate

    async def register(
        self,
        user_id: str,
        password: str | None,
        *,
        admin: bool = False,
        registration_token: str | None = None,
        user_type: str | None = None,
    ) -> None:
        password_hash = await self.hash_password(password) if password else None
        await self.create(
            user_id,
            password_hash,
            admin=admin,
            registration_token=registration_token,
            user_type=user_type,
        )

    async def hash_password(self, password: str) -> str:
        return await self._hasher.hash(password)

    async def create(
        self,
        user_id: str,
        password_hash: str | None,
        *,
        admin: bool = False,
        registration_token: str | None = None,
        user_type: str | None = None,
        displayname: str | None = None,
    ) -> None:
        """Create the account with an already hashed password (or none), its
        display name `displayname` or else the localpart."""
        localpart = user_id[1:].partition(":")[0]
        try:
            await self._users.create_user(
                user_id,
                password_hash,
                admin=admin,
                displayname=displayname or localpart,
                user_type=user_type,
            )
        except UserExistsError:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken") from None
        if registration_token is not None:
            await self._registration_tokens.complete(registration_token)

    def check_password(self, password: str) -> None:
        """400 with the spec's error code unless `password` follows the policy."""
        self._policy.check(password)

    async def change_password(
        self, user_id: str, new_password: str, *, keep_device: str | None, logout_devices: bool
    ) -> None:
        self.check_password(new_password)
        await self._users.set_password_hash(user_id, await self._hasher.hash(new_password))
        if logout_devices:
            await self._sessions.delete_all_devices(user_id, except_device=keep_device)

    async def has_password(self, user_id: str) -> bool:
        """Whether the account has a local password to check and change
        (accounts from upstream providers or LDAP may have none)."""
        user = await self._users.get_user(user_id)
        return user is not None and bool(user.password_hash)

    async def deactivate(self, user_id: str, *, erase: bool = False) -> None:
        """With `erase`, the user's messages are shown redacted to those who
        were not in the room when they were sent (rooms/visibility.py)."""
        await self._sessions.delete_all_devices(user_id)
        await self._users.deactivate(user_id, erase=erase)
