"""OpenID tokens (the push rules API is in push_rules.py)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import forbidden
from homeserver.openid import OpenIdTokens

FEDERATION_V1 = ("/_matrix/federation/v1",)


class OpenIdApi:
    def __init__(self, tokens: OpenIdTokens, server_name: str) -> None:
        self._tokens = tokens
        self._server_name = server_name

    @endpoint("POST", "/user/{userId}/openid/request_token")
    async def request_token(self, req: ClientRequest) -> dict[str, Any]:
        if req.params["userId"] != req.user.user_id:
            raise forbidden("Cannot request an OpenID token for another user")
        issued = await self._tokens.issue(req.user.user_id)
        return {
            "access_token": issued.token,
            "token_type": "Bearer",
            "matrix_server_name": self._server_name,
            "expires_in": issued.expires_in_ms // 1000,
        }

    # The federation listener serves this too (federation/api_openid.py). It
    # is here as well because third parties (and SyTest) often reach only the
    # client listener, as with Synapse; the OpenID token is its only
    # authentication, so either listener answers the same.
    @endpoint("GET", "/openid/userinfo", auth=False, prefixes=FEDERATION_V1)
    async def userinfo(self, req: ClientRequest) -> dict[str, Any]:
        return {"sub": await self._tokens.user_for(req.query.get("access_token"))}
