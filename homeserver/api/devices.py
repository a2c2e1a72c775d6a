"""The user's devices: list, inspect, rename and delete."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.sessions import SessionService
from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str, opt_str_list
from homeserver.appservice.accounts import AppServiceAccounts
from homeserver.errors import missing_param
from homeserver.uia import PASSWORD, UiaService
from storage.sessions import DeviceRecord


def device_json(device: DeviceRecord) -> dict[str, Any]:
    """A device, its unknowns as null: matrix-nio requires every key (as
    Synapse sends them), where the spec's schema has a string or nothing."""
    return {
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
    }


class DevicesApi:
    def __init__(
        self,
        sessions: SessionService,
        uia: UiaService,
        appservices: AppServiceAccounts | None = None,
    ) -> None:
        self._sessions = sessions
        self._uia = uia
        self._appservices = appservices

    @endpoint("GET", "/devices", guest_ok=True)
    async def list_devices(self, req: ClientRequest) -> dict[str, Any]:
        devices = await self._sessions.list_devices(req.user.user_id)
        return {"devices": [device_json(d) for d in devices]}

    @endpoint("GET", "/devices/{deviceId}", guest_ok=True)
    async def get_device(self, req: ClientRequest) -> dict[str, Any]:
        device = await self._sessions.get_device(req.user.user_id, req.params["deviceId"])
        return device_json(device)

    @endpoint("PUT", "/devices/{deviceId}", guest_ok=True)
    async def rename_device(self, req: ClientRequest) -> dict[str, Any] | tuple[int, Any]:
        """Rename a device; for an appservice managing its users' devices
        (MSC4190), create it if it does not exist yet (201)."""
        display_name = opt_str(req.json(), "display_name")
        user_id, device_id = req.user.user_id, req.params["deviceId"]
        if self._appservices is not None and self._appservices.manages_devices(req.user):
            if await self._appservices.create_device(user_id, device_id, display_name):
                return 201, {}
        await self._sessions.rename_device(user_id, device_id, display_name)
        return {}

    @endpoint("DELETE", "/devices/{deviceId}")
    async def delete_device(self, req: ClientRequest) -> dict[str, Any]:
        device_id = req.params["deviceId"]
        await self._sessions.get_device(req.user.user_id, device_id)
        await self._authorise(req)
        await self._sessions.delete_devices(req.user.user_id, [device_id])
        return {}

    @endpoint("POST", "/delete_devices")
    async def delete_devices(self, req: ClientRequest) -> dict[str, Any]:
        device_ids = opt_str_list(req.json(), "devices")
        if device_ids is None:
            raise missing_param("'devices' is required")
        await self._authorise(req)
        await self._sessions.delete_devices(req.user.user_id, device_ids)
        return {}

    async def _authorise(self, req: ClientRequest) -> None:
        if req.user.app_service_id is not None:
            return  # As Synapse (MSC4190): appservices delete their users' devices without UIA.
        await self._uia.authenticate(
            req.json().get("auth"),
            [[PASSWORD]],
            method=req.method,
            uri=req.path,
            user_id=req.user.user_id,
        )
