"""`GET /_matrix/federation/v1/hierarchy/{roomId}`: a space and its children for another server."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from homeserver.errors import MatrixError
from homeserver.rooms.hierarchy_serving import HierarchyServing


class FederationHierarchyApi:
    def __init__(self, serving: HierarchyServing) -> None:
        self._serving = serving

    @federation_endpoint("GET", FEDERATION_V1 + "/hierarchy/{roomId}")
    async def hierarchy(self, req: FederationRequest) -> dict[str, Any]:
        suggested = req.query.get("suggested_only", "false")
        if suggested not in ("true", "false"):
            raise MatrixError(400, "M_INVALID_PARAM", "suggested_only must be 'true' or 'false'")
        return await self._serving.hierarchy(
            req.origin, req.params["roomId"], suggested_only=suggested == "true"
        )
