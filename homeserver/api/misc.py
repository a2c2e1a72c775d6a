"""Push rules (the defaults, until rule editing lands with sync) and OpenID tokens.

The default rules include the body-based mention rules that spec v1.17
dropped: Synapse still serves them, and clients of the spec versions we
advertise still rely on them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from homeserver.accounts.sessions import hash_token
from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import forbidden
from homeserver.push.default_rules import default_push_rules
from storage.openid import OpenIdStore

OPENID_TOKEN_LIFETIME_MS = 60 * 60 * 1000


class PushRulesApi:
    @endpoint("GET", "/pushrules/")
    async def all_rules(self, req: ClientRequest) -> dict[str, Any]:
        return default_push_rules(req.user.user_id, legacy_mentions=True)

    @endpoint("GET", "/pushrules/global/")
    async def global_rules(self, req: ClientRequest) -> dict[str, Any]:
        return default_push_rules(req.user.user_id, legacy_mentions=True)["global"]


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
