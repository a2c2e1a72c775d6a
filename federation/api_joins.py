"""Joins of other servers' users to our rooms: make_join and send_join (v2)."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FEDERATION_V2, FederationRequest, federation_endpoint
from federation.joins import JoinService
from homeserver.errors import MatrixError


def _flag(req: FederationRequest, name: str) -> bool:
    """A boolean query parameter: `true` or `false` (absent: false)."""
    value = req.query.get(name, "false")
    if value not in ("true", "false"):
        raise MatrixError(400, "M_INVALID_PARAM", f"{name} must be 'true' or 'false'")
    return value == "true"


class FederationJoinsApi:
    def __init__(self, joins: JoinService) -> None:
        self._joins = joins

    @federation_endpoint("GET", FEDERATION_V1 + "/make_join/{roomId}/{userId}")
    async def make_join(self, req: FederationRequest) -> dict[str, Any]:
        # Servers that send no ver support room version 1 only.
        versions = req.query.getall("ver", ["1"])
        return await self._joins.make_join(
            req.origin, req.params["roomId"], req.params["userId"], versions
        )

    @federation_endpoint("PUT", FEDERATION_V2 + "/send_join/{roomId}/{eventId}")
    async def send_join(self, req: FederationRequest) -> dict[str, Any]:
        return await self._joins.send_join(
            req.origin,
            req.params["roomId"],
            req.params["eventId"],
            req.json(),
            omit_members=_flag(req, "omit_members"),
        )
