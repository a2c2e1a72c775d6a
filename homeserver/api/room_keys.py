"""Server-side key backup: versions and the backed-up room keys."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.e2e.backup import (
    KeyBackupService,
    key_json,
    parse_room_key,
    parse_rooms,
    parse_sessions,
)
from homeserver.errors import missing_param, not_found

_KEYS = "/room_keys/keys"
_ROOM = "/room_keys/keys/{roomId}"
_SESSION = "/room_keys/keys/{roomId}/{sessionId}"


def _version(req: ClientRequest) -> str:
    version = req.query.get("version")
    if version is None:
        raise missing_param("'version' is required")
    return version


class RoomKeysApi:
    def __init__(self, backup: KeyBackupService) -> None:
        self._backup = backup

    @endpoint("POST", "/room_keys/version")
    async def create_version(self, req: ClientRequest) -> dict[str, Any]:
        return await self._backup.create_version(req.user.user_id, req.json())

    @endpoint("GET", "/room_keys/version")
    async def latest_version(self, req: ClientRequest) -> dict[str, Any]:
        return await self._backup.get_version(req.user.user_id, None)

    @endpoint("GET", "/room_keys/version/{version}")
    async def get_version(self, req: ClientRequest) -> dict[str, Any]:
        return await self._backup.get_version(req.user.user_id, req.params["version"])

    @endpoint("PUT", "/room_keys/version/{version}")
    async def update_version(self, req: ClientRequest) -> dict[str, Any]:
        await self._backup.update_version(req.user.user_id, req.params["version"], req.json())
        return {}

    @endpoint("DELETE", "/room_keys/version/{version}")
    async def delete_version(self, req: ClientRequest) -> dict[str, Any]:
        await self._backup.delete_version(req.user.user_id, req.params["version"])
        return {}

    @endpoint("PUT", _KEYS)
    async def put_all(self, req: ClientRequest) -> dict[str, Any]:
        keys = parse_rooms(req.json())
        return await self._backup.put_keys(req.user.user_id, _version(req), keys)

    @endpoint("PUT", _ROOM)
    async def put_room(self, req: ClientRequest) -> dict[str, Any]:
        keys = parse_sessions(req.params["roomId"], req.json())
        return await self._backup.put_keys(req.user.user_id, _version(req), keys)

    @endpoint("PUT", _SESSION)
    async def put_session(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        key = parse_room_key(p["roomId"], p["sessionId"], req.json())
        return await self._backup.put_keys(req.user.user_id, _version(req), [key])

    @endpoint("GET", _KEYS)
    async def get_all(self, req: ClientRequest) -> dict[str, Any]:
        rooms: dict[str, Any] = {}
        for key in await self._backup.get_keys(req.user.user_id, _version(req), None, None):
            sessions = rooms.setdefault(key.room_id, {"sessions": {}})["sessions"]
            sessions[key.session_id] = key_json(key)
        return {"rooms": rooms}

    @endpoint("GET", _ROOM)
    async def get_room(self, req: ClientRequest) -> dict[str, Any]:
        keys = await self._backup.get_keys(
            req.user.user_id, _version(req), req.params["roomId"], None
        )
        return {"sessions": {key.session_id: key_json(key) for key in keys}}

    @endpoint("GET", _SESSION)
    async def get_session(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        keys = await self._backup.get_keys(
            req.user.user_id, _version(req), p["roomId"], p["sessionId"]
        )
        if not keys:
            raise not_found("No backed-up key for this session")
        return key_json(keys[0])

    @endpoint("DELETE", _KEYS)
    async def delete_all(self, req: ClientRequest) -> dict[str, Any]:
        return await self._backup.delete_keys(req.user.user_id, _version(req), None, None)

    @endpoint("DELETE", _ROOM)
    async def delete_room(self, req: ClientRequest) -> dict[str, Any]:
        return await self._backup.delete_keys(
            req.user.user_id, _version(req), req.params["roomId"], None
        )

    @endpoint("DELETE", _SESSION)
    async def delete_session(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        return await self._backup.delete_keys(
            req.user.user_id, _version(req), p["roomId"], p["sessionId"]
        )
