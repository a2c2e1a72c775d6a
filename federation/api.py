"""Server-server HTTP handlers (thin), mounted on the TLS federation listener."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint

SERVER_NAME = "homeserver"
SERVER_VERSION = "0.1.0"


class FederationVersionApi:
    @endpoint("GET", "/_matrix/federation/v1/version", auth=False, prefixes=("",))
    async def version(self, req: ClientRequest) -> dict[str, Any]:
        return {"server": {"name": SERVER_NAME, "version": SERVER_VERSION}}
