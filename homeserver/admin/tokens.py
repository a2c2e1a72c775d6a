"""Registration tokens: created, changed and withdrawn by administrators.

`pending` counts registrations in progress that hold the token (a UIA session
that completed the token stage), `completed` those that finished; a token is
valid while their sum is below `uses_allowed` and it has not expired.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from homeserver.errors import invalid_param, not_found
from storage.admin_tokens import AdminTokenStore, TokenExistsError

TOKEN_ALPHABET = string.ascii_letters + string.digits + "._~-"
MAX_TOKEN_LENGTH = 64


def _now_ms() -> int:
    return int(time.time() * 1000)


def check_uses_allowed(value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise invalid_param("uses_allowed must be a non-negative integer or null")
    return value


def check_expiry_time(value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise invalid_param("expiry_time must be an integer or null")
    if value is not None and value < _now_ms():
        raise invalid_param("expiry_time must not be in the past")
    return value


class AdminTokens:
    def __init__(self, store: AdminTokenStore) -> None:
        self._store = store

    async def list_tokens(self, valid: bool | None) -> dict[str, Any]:
        return {"registration_tokens": await self._store.list_tokens(valid)}

    async def get(self, token: str) -> dict[str, Any]:
        found = await self._store.get(token)
        if found is None:
            raise not_found(f"No such registration token: {token}")
        return found

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        uses_allowed = check_uses_allowed(body.get("uses_allowed"))
        expiry_time = check_expiry_time(body.get("expiry_time"))
        token = body.get("token")
        if token is None:
            length = body.get("length", 16)
            if not isinstance(length, int) or isinstance(length, bool):
                raise invalid_param("length must be an integer")
            if not 0 < length <= MAX_TOKEN_LENGTH:
                raise invalid_param(f"length must be from 1 to {MAX_TOKEN_LENGTH}")
            token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))
        elif (
            not isinstance(token, str)
            or not 0 < len(token) <= MAX_TOKEN_LENGTH
            or any(c not in TOKEN_ALPHABET for c in token)
        ):
            raise invalid_param(
                f"token must be 1 to {MAX_TOKEN_LENGTH} characters of A-Z, a-z, 0-9, . _ ~ -"
            )
        try:
            return await self._store.create(token, uses_allowed, expiry_time)
        except TokenExistsError:
            raise invalid_param(f"Token already exists: {token}") from None

    async def update(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, int | None] = {}
        if "uses_allowed" in body:
            changes["uses_allowed"] = check_uses_allowed(body["uses_allowed"])
        if "expiry_time" in body:
            changes["expiry_time"] = check_expiry_time(body["expiry_time"])
        updated = await self._store.update(token, changes)
        if updated is None:
            raise not_found(f"No such registration token: {token}")
        return updated

    async def delete(self, token: str) -> None:
        if not await self._store.delete(token):
            raise not_found(f"No such registration token: {token}")
