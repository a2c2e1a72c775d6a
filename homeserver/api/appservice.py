"""Client-server endpoints only application services call: the ping and
their networks' room directories."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.appservice.directory import AppServiceDirectory
from homeserver.appservice.ping import AppServicePing


class AppServiceApi:
    def __init__(self, ping: AppServicePing, directory: AppServiceDirectory) -> None:
        self._ping = ping
        self._directory = directory

    @endpoint("POST", "/appservice/{appserviceId}/ping", prefixes=CLIENT_V1)
    async def ping(self, req: ClientRequest) -> dict[str, Any]:
        transaction_id = opt_str(req.json(), "transaction_id")
        duration = await self._ping.ping(req.user, req.params["appserviceId"], transaction_id)
        return {"duration_ms": duration}

    @endpoint("PUT", "/directory/list/appservice/{networkId}/{roomId}")
    async def put_network_visibility(self, req: ClientRequest) -> dict[str, Any]:
        visibility = req_str(req.json(), "visibility")
        await self._directory.set_visibility(
            req.user, req.params["networkId"], req.params["roomId"], visibility
        )
        return {}
