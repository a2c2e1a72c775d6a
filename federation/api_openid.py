"""The OpenID userinfo endpoint: a third party exchanges a user's OpenID
token for their user id. Authenticated by that token, not by X-Matrix."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from homeserver.openid import OpenIdTokens


class FederationOpenIdApi:
    def __init__(self, tokens: OpenIdTokens) -> None:
        self._tokens = tokens

    @federation_endpoint("GET", FEDERATION_V1 + "/openid/userinfo", auth=False)
    async def userinfo(self, req: FederationRequest) -> dict[str, Any]:
        return {"sub": await self._tokens.user_for(req.query.get("access_token"))}
