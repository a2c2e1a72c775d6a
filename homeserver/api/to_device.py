"""Send-to-device messaging."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.to_device import ToDeviceService


class ToDeviceApi:
    def __init__(self, to_device: ToDeviceService) -> None:
        self._to_device = to_device

    @endpoint("PUT", "/sendToDevice/{eventType}/{txnId}", guest_ok=True)
    async def send(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._to_device.send(req.user, p["eventType"], p["txnId"], req.json())
        return {}
