"""Who a login identifier names, and whether the password is theirs."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.ldap.directory import DirectoryUnavailable
from homeserver.accounts.ldap.sign_in import LdapSignIn
from homeserver.accounts.passwords import PasswordHasher
from homeserver.errors import MatrixError, bad_json, forbidden
from homeserver.identifiers import split_user_id, user_id_for
from storage.users import UserRecord, UserStore


def identifier_user(body: dict[str, Any], server_name: str) -> str:
    """The user id a login (or m.login.password stage) names.

    Accepts the `identifier` object of type m.id.user and the legacy top-level
    `user` field, as a localpart or a full user id.
    """
    identifier = body.get("identifier")
    if identifier is not None:
        if not isinstance(identifier, dict) or not isinstance(identifier.get("type"), str):
            raise bad_json("'identifier' must be an object with a 'type'")
        if identifier["type"] != "m.id.user":
            raise MatrixError(
                400, "M_UNKNOWN", f"Unsupported identifier type {identifier['type']!r}"
            )
        user = identifier.get("user")
    else:
        user = body.get("user")
    if not isinstance(user, str) or not user:
        raise bad_json("A user identifier is required")
    if user.startswith("@"):
        if split_user_id(user) is None:
            raise MatrixError(400, "M_INVALID_USERNAME", "Invalid user id")
        return user
    return user_id_for(user, server_name)


class PasswordChecker:
    """The one place a password is verified: local password hashes and, when
    configured, the LDAP directory (homeserver/accounts/ldap/).

    The directory is asked first, as Synapse asks its password providers
    before its own database; a local hash is the fallback unless
    `local_passwords_enabled` is off.
    """

    def __init__(
        self, users: UserStore, hasher: PasswordHasher, ldap: LdapSignIn | None = None
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._ldap = ldap

    async def check(self, user_id: str, password: Any) -> UserRecord:
        """The account, if `password` is its password; 403 M_FORBIDDEN otherwise.

        User ids are matched exactly first and then in lower case, because
        people type their user name with capitals that the server folded away.
        A directory that cannot be asked is a 503 unless a local password
        matched: never a sign-in without a verified password. (Synapse's
        ldap3 provider answers 403 then; a 503 tells the person to try again
        rather than to doubt a password that may be right.)
        """
        if not isinstance(password, str):
            raise bad_json("'password' must be a string")
        user = await self._users.get_user(user_id)
        if user is None and user_id != user_id.lower():
            user = await self._users.get_user(user_id.lower())
        # A deactivated account has no password left to check; say why (as Synapse).
        if user is not None and user.deactivated:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        directory_down = False
        if self._ldap is not None:
            try:
                signed_in = await self._ldap.sign_in(user_id, user, password)
            except DirectoryUnavailable:
                signed_in, directory_down = None, True
            if signed_in is not None:
                return signed_in
        local_ok = self._ldap is None or self._ldap.local_passwords_enabled
        if local_ok and user is not None and await self._hasher.check(password, user.password_hash):
            return user
        if directory_down:
            raise MatrixError(
                503, "M_UNKNOWN", "The directory is unavailable; try again in a moment"
            )
        raise forbidden("Invalid username or password")

    async def ensure_changeable(self, user_id: str) -> None:
        """403 M_FORBIDDEN if this account's password cannot be changed here:
        local passwords are off, or the account's password lives in the
        directory (as Synapse's "Password change disabled" when its local
        password database is off)."""
        if self._ldap is None:
            return
        if not self._ldap.local_passwords_enabled:
            raise forbidden("Password change is disabled: passwords are managed by the directory")
        if await self._ldap.manages_password(user_id):
            raise forbidden("This account's password is managed by your organisation's directory")
