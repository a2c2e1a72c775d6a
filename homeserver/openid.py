"""OpenID tokens: a user asks for one and hands it to a third party (an
integration manager, a widget), which asks this server who it belongs to.

Only the token's hash is stored, as for access tokens.
"""

from __future__ import annotations

import secrets
import time

import attrs

from homeserver.accounts.sessions import hash_token
from homeserver.errors import MatrixError
from storage.openid import OpenIdStore

OPENID_TOKEN_LIFETIME_MS = 60 * 60 * 1000


@attrs.frozen
class OpenIdToken:
    token: str
    expires_in_ms: int


class OpenIdTokens:
    def __init__(self, store: OpenIdStore) -> None:
        self._store = store

    async def issue(self, user_id: str) -> OpenIdToken:
        token = secrets.token_urlsafe(32)
        valid_until = _now_ms() + OPENID_TOKEN_LIFETIME_MS
        await self._store.add(hash_token(token), user_id, valid_until)
        return OpenIdToken(token, OPENID_TOKEN_LIFETIME_MS)

    async def user_for(self, token: str | None) -> str:
        """Whose token this is; 401 when there is none, or it is unknown or expired."""
        if not token:
            raise MatrixError(401, "M_MISSING_TOKEN", "An OpenID access token is required")
        user_id = await self._store.user_for(hash_token(token), _now_ms())
        if user_id is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unknown or expired OpenID token")
        return user_id


def _now_ms() -> int:
    return int(time.time() * 1000)
