"""Admin API: the server's version and background updates."""

from __future__ import annotations

from typing import Any

from homeserver.admin.server import BackgroundUpdates, server_version
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.api.params import opt_bool


class AdminServerApi:
    def __init__(self, background_updates: BackgroundUpdates) -> None:
        self._updates = background_updates

    @admin_endpoint("GET", "/v1/server_version")
    async def version(self, req: ClientRequest) -> dict[str, Any]:
        return {"server_version": server_version()}

    @admin_endpoint("GET", "/v1/background_updates/status")
    async def status(self, req: ClientRequest) -> dict[str, Any]:
        return self._updates.status()

    @admin_endpoint("GET", "/v1/background_updates/enabled")
    async def enabled(self, req: ClientRequest) -> dict[str, Any]:
        return self._updates.enabled()

    @admin_endpoint("POST", "/v1/background_updates/enabled", action="server.background_updates")
    async def set_enabled(self, req: ClientRequest) -> dict[str, Any]:
        return self._updates.set_enabled(opt_bool(req.json(), "enabled", True))
