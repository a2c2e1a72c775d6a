"""Admin API: a user's OAuth 2.0 sessions, listed and ended (an
organisation ends a leaver's phones from here)."""

from __future__ import annotations

from typing import Any

import attrs

from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.identifiers import split_user_id
from homeserver.oauth.grants import OAuthGrants


class AdminOAuthApi:
    def __init__(self, grants: OAuthGrants, server_name: str) -> None:
        self._grants = grants
        self._server_name = server_name

    def _local_user(self, user_id: str) -> str:
        parts = split_user_id(user_id)
        if parts is None:
            raise invalid_param(f"Invalid user id {user_id!r}")
        if parts[1] != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Can only look up local users")
        return user_id

    @admin_endpoint("GET", "/v1/users/{userId}/oauth_sessions")
    async def list_sessions(self, req: ClientRequest) -> dict[str, Any]:
        sessions = await self._grants.sessions(self._local_user(req.params["userId"]))
        return {"sessions": [attrs.asdict(s) for s in sessions], "total": len(sessions)}

    @admin_endpoint(
        "DELETE", "/v1/users/{userId}/oauth_sessions/{deviceId}", action="oauth_session.end"
    )
    async def end_session(self, req: ClientRequest) -> dict[str, Any]:
        user_id = self._local_user(req.params["userId"])
        device_id = req.params["deviceId"]
        if device_id not in {s.device_id for s in await self._grants.sessions(user_id)}:
            raise not_found("No such OAuth session")
        await self._grants.end_session(user_id, device_id)
        return {}

    @admin_endpoint("DELETE", "/v1/users/{userId}/oauth_sessions", action="oauth_session.end_all")
    async def end_all_sessions(self, req: ClientRequest) -> dict[str, Any]:
        user_id = self._local_user(req.params["userId"])
        sessions = await self._grants.sessions(user_id)
        for session in sessions:
            await self._grants.end_session(user_id, session.device_id)
        return {"ended": len(sessions)}
