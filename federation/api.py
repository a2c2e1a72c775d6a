"""Server-server HTTP handlers (thin), mounted on the TLS federation listener."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint

SERVER_NAME = "homeserver"
SERVER_VERSION = "0.1.0"


class FederationVersionApi:
    @federation_endpoint("GET", FEDERATION_V1 + "/version", auth=False)
    async def version(self, req: FederationRequest) -> dict[str, Any]:
        return {"server": {"name": SERVER_NAME, "version": SERVER_VERSION}}
