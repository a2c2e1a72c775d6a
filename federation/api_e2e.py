"""End-to-end encryption keys of our users, for other servers: device lists,
key queries and one-time key claims."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from federation.user_devices import UserDevices
from homeserver.e2e.keys import KeyService


class FederationE2eApi:
    def __init__(self, keys: KeyService, devices: UserDevices) -> None:
        self._keys = keys
        self._devices = devices

    @federation_endpoint("GET", FEDERATION_V1 + "/user/devices/{userId}")
    async def user_devices(self, req: FederationRequest) -> dict[str, Any]:
        return await self._devices.user_devices(req.params["userId"])

    @federation_endpoint("POST", FEDERATION_V1 + "/user/keys/query")
    async def query(self, req: FederationRequest) -> dict[str, Any]:
        return await self._keys.query_for_server(req.json())

    @federation_endpoint("POST", FEDERATION_V1 + "/user/keys/claim")
    async def claim(self, req: FederationRequest) -> dict[str, Any]:
        return await self._keys.claim_for_server(req.json())
