"""Dehydrated devices (MSC3814), under the unstable prefix Synapse serves and
matrix-rust-sdk (Element X, Element Web) calls."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.e2e.dehydrated import MAX_EVENTS, DehydratedDevices
from homeserver.errors import bad_json, invalid_param, missing_param

MSC3814 = ("/_matrix/client/unstable/org.matrix.msc3814.v1",)
# The fields of a PUT that are keys to upload with the device (/keys/upload's).
_KEY_FIELDS = ("device_keys", "one_time_keys", "fallback_keys")


def _position(raw: Any, name: str) -> int | None:
    if raw is None:
        return None
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise invalid_param(f"'{name}' is not a valid token")
    return int(raw)


def _limit(req: ClientRequest) -> int:
    raw = req.query.get("limit")
    if raw is None:
        return MAX_EVENTS
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) < 1:
        raise invalid_param("limit must be a positive integer")
    return int(raw)


class DehydratedDeviceApi:
    def __init__(self, dehydrated: DehydratedDevices) -> None:
        self._dehydrated = dehydrated

    @endpoint("GET", "/dehydrated_device", prefixes=MSC3814)
    async def get(self, req: ClientRequest) -> dict[str, Any]:
        return await self._dehydrated.get(req.user.user_id)

    @endpoint("PUT", "/dehydrated_device", prefixes=MSC3814)
    async def put(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        device_id = req_str(body, "device_id")
        if not device_id or len(device_id) > 255:
            raise invalid_param("'device_id' must be 1 to 255 characters")
        device_data = body.get("device_data")
        if not isinstance(device_data, dict):
            raise bad_json("'device_data' must be an object")
        if not isinstance(device_data.get("algorithm"), str):
            raise bad_json("'device_data.algorithm' must be a string")
        display_name = opt_str(body, "initial_device_display_name")
        # As Synapse: the device is of no use to others without its keys.
        if "device_keys" not in body:
            raise missing_param("'device_keys' must be uploaded with the device")
        keys = {field: body[field] for field in _KEY_FIELDS if field in body}
        created = await self._dehydrated.put(
            req.user.user_id, device_id, device_data, display_name, keys
        )
        return {"device_id": created}

    @endpoint("DELETE", "/dehydrated_device", prefixes=MSC3814)
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        return {"device_id": await self._dehydrated.delete(req.user.user_id)}

    @endpoint("GET", "/dehydrated_device/{deviceId}/events", prefixes=MSC3814)
    async def events_get(self, req: ClientRequest) -> dict[str, Any]:
        events, next_batch = await self._dehydrated.events(
            req.user.user_id,
            req.params["deviceId"],
            _position(req.query.get("from"), "from"),
            _limit(req),
        )
        result: dict[str, Any] = {"events": events}
        if events:
            result["next_batch"] = str(next_batch)
        return result

    @endpoint("POST", "/dehydrated_device/{deviceId}/events", prefixes=MSC3814)
    async def events_post(self, req: ClientRequest) -> dict[str, Any]:
        """The form of the MSC's earlier draft that matrix-rust-sdk uses:
        `next_batch` in the body, and always in the response."""
        since = _position(req.json().get("next_batch"), "next_batch")
        events, next_batch = await self._dehydrated.events(
            req.user.user_id, req.params["deviceId"], since, _limit(req)
        )
        return {"events": events, "next_batch": str(next_batch)}
