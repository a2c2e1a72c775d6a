"""Admin API: registration tokens."""

from __future__ import annotations

from typing import Any

from homeserver.admin.tokens import AdminTokens
from homeserver.api.admin.common import query_bool_or_none
from homeserver.api.http import ClientRequest, admin_endpoint


class AdminTokensApi:
    def __init__(self, tokens: AdminTokens) -> None:
        self._tokens = tokens

    @admin_endpoint("GET", "/v1/registration_tokens")
    async def list_tokens(self, req: ClientRequest) -> dict[str, Any]:
        return await self._tokens.list_tokens(query_bool_or_none(req, "valid"))

    @admin_endpoint("POST", "/v1/registration_tokens/new", action="token.create")
    async def create(self, req: ClientRequest) -> dict[str, Any]:
        return await self._tokens.create(req.json())

    @admin_endpoint("GET", "/v1/registration_tokens/{token}")
    async def get(self, req: ClientRequest) -> dict[str, Any]:
        return await self._tokens.get(req.params["token"])

    @admin_endpoint("PUT", "/v1/registration_tokens/{token}", action="token.update")
    async def update(self, req: ClientRequest) -> dict[str, Any]:
        return await self._tokens.update(req.params["token"], req.json())

    @admin_endpoint("DELETE", "/v1/registration_tokens/{token}", action="token.delete")
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        await self._tokens.delete(req.params["token"])
        return {}
