"""Who a login identifier names, and whether the password is theirs."""

from __future__ import annotations

from typing import Any

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
    def __init__(self, users: UserStore, hasher: PasswordHasher) -> None:
        self._users = users
        self._hasher = hasher

    async def check(self, user_id: str, password: Any) -> UserRecord:
        """The account, if `password` is its password; 403 M_FORBIDDEN otherwise.

        User ids are matched exactly first and then in lower case, because
        people type their user name with capitals that the server folded away.
        """
        if not isinstance(password, str):
            raise bad_json("'password' must be a string")
        user = await self._users.get_user(user_id)
        if user is None and user_id != user_id.lower():
            user = await self._users.get_user(user_id.lower())
        # A deactivated account has no password left to check; say why (as Synapse).
        if user is not None and user.deactivated:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        if user is None or not await self._hasher.check(password, user.password_hash):
            raise forbidden("Invalid username or password")
        return user
