"""Profile and alias lookups on other servers (/query/profile, /query/directory),
for the client API's profile and directory endpoints and for joins by alias."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from federation.transport import FederationClient, FederationError
from homeserver.errors import MatrixError, not_found

V1 = "/_matrix/federation/v1"


def server_of(identifier: str) -> str:
    return identifier.partition(":")[2]


def _odd(server: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", f"{server} answered with something odd")


class FederationQueries:
    """Implements homeserver.rooms.remote.RemoteQueries.

    The federation client is made with the federation listener, after the
    services that use this: it is reached through a callable.
    """

    def __init__(self, client: Callable[[], FederationClient]) -> None:
        self._client = client

    async def _query(self, server: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        try:
            answer = await self._client().get_json(server, V1 + path, query=query)
        except FederationError as e:
            if e.status == 404:
                raise not_found(f"Not found on {server}") from None
            raise MatrixError(502, "M_UNKNOWN", f"{server} did not answer: {e}") from None
        if not isinstance(answer, dict):
            raise _odd(server)
        return answer

    async def alias(self, alias: str) -> dict[str, Any]:
        server = server_of(alias)
        answer = await self._query(server, "/query/directory", {"room_alias": alias})
        room_id, servers = answer.get("room_id"), answer.get("servers", [])
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise _odd(server)
        return {"room_id": room_id, "servers": [s for s in servers if isinstance(s, str)]}

    async def profile(self, user_id: str, field: str | None) -> dict[str, Any]:
        query = {"user_id": user_id} | ({"field": field} if field is not None else {})
        answer = await self._query(server_of(user_id), "/query/profile", query)
        if field is None:
            return answer
        if field not in answer:
            raise not_found(f"The profile has no {field!r}")
        return {field: answer[field]}
