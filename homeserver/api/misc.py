"""OpenID tokens (the push rules API is in push_rules.py)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from homeserver.accounts.sessions import hash_token
from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import forbidden
from storage.openid import OpenIdStore

OPENID_TOKEN_LIFETIME_MS = 60 * 60 * 1000


class OpenIdApi:
    def __init__(self, store: OpenIdStore, server_name: str) -> None:
        self._store = store
        self._server_name = server_name

    @endpoint("POST", "/user/{userId}/openid/request_token")
    async def request_token(self, req: ClientRequest) -> dict[str, Any]:
        if req.params["userId"] != req.user.user_id:
            raise forbidden("Cannot request an OpenID token for another user")
        token = secrets.token_urlsafe(32)
        valid_until = int(time.time() * 1000) + OPENID_TOKEN_LIFETIME_MS
        await self._store.add(hash_token(token), req.user.user_id, valid_until)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self._server_name,
            "expires_in": OPENID_TOKEN_LIFETIME_MS // 1000,
        }
