"""Admin API: legal holds on rooms and users (homeserver/admin/legal_holds.py).

`PUT` places a hold (body `{"reason": ...}`), `DELETE` lifts it, `GET` reads
it; `GET /v1/legal_holds` lists them all. The path names the room or user,
so the audit log entry of each change names it as its target.
"""

from __future__ import annotations

from typing import Any

from homeserver.admin.legal_holds import LegalHolds
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.errors import invalid_param, missing_param
from homeserver.identifiers import is_valid_room_id, is_valid_user_id

MAX_REASON_LENGTH = 2000


def _room(req: ClientRequest) -> str:
    room_id = req.params["roomId"]
    if not is_valid_room_id(room_id):
        raise invalid_param("roomId must be a room id")
    return room_id


def _user(req: ClientRequest) -> str:
    user_id = req.params["userId"]
    if not is_valid_user_id(user_id):
        raise invalid_param("userId must be a user id")
    return user_id


def _reason(req: ClientRequest) -> str:
    reason = req.json().get("reason")
    if reason is None:
        raise missing_param("reason is required")
    if not isinstance(reason, str) or not reason.strip():
        raise invalid_param("reason must be a non-empty string")
    if len(reason) > MAX_REASON_LENGTH:
        raise invalid_param(f"reason must be at most {MAX_REASON_LENGTH} characters")
    return reason


class AdminLegalHoldsApi:
    def __init__(self, holds: LegalHolds) -> None:
        self._holds = holds

    @admin_endpoint("GET", "/v1/legal_holds")
    async def list_holds(self, req: ClientRequest) -> dict[str, Any]:
        return await self._holds.all()

    @admin_endpoint("PUT", "/v1/legal_holds/rooms/{roomId}", action="legal_hold.place")
    async def place_room(self, req: ClientRequest) -> dict[str, Any]:
        room_id = _room(req)
        return await self._holds.place("room", room_id, _reason(req), req.user.user_id)

    @admin_endpoint("GET", "/v1/legal_holds/rooms/{roomId}")
    async def get_room(self, req: ClientRequest) -> dict[str, Any]:
        return await self._holds.get("room", _room(req))

    @admin_endpoint("DELETE", "/v1/legal_holds/rooms/{roomId}", action="legal_hold.lift")
    async def lift_room(self, req: ClientRequest) -> dict[str, Any]:
        await self._holds.lift("room", _room(req))
        return {}

    @admin_endpoint("PUT", "/v1/legal_holds/users/{userId}", action="legal_hold.place")
    async def place_user(self, req: ClientRequest) -> dict[str, Any]:
        user_id = _user(req)
        return await self._holds.place("user", user_id, _reason(req), req.user.user_id)

    @admin_endpoint("GET", "/v1/legal_holds/users/{userId}")
    async def get_user(self, req: ClientRequest) -> dict[str, Any]:
        return await self._holds.get("user", _user(req))

    @admin_endpoint("DELETE", "/v1/legal_holds/users/{userId}", action="legal_hold.lift")
    async def lift_user(self, req: ClientRequest) -> dict[str, Any]:
        await self._holds.lift("user", _user(req))
        return {}
