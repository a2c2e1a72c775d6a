"""Admin API: redact all of a user's events as a background job
(homeserver/erasure/redact_job.py), in Synapse's shape."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.api.params import BIGINT
from homeserver.erasure.redact_job import UserRedactions
from homeserver.errors import invalid_param, missing_param
from homeserver.identifiers import is_valid_room_id

# Synapse's default number of a user's events looked at per room.
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
MAX_ROOMS = 10_000


def _rooms(body: dict[str, Any]) -> list[str]:
    if "rooms" not in body:
        raise missing_param("rooms is required (an empty list means every room)")
    rooms = body["rooms"]
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise invalid_param("rooms must be a list of room ids")
    if len(rooms) > MAX_ROOMS:
        raise invalid_param(f"rooms may name at most {MAX_ROOMS} rooms")
    for room_id in rooms:
        if not is_valid_room_id(room_id):
            raise invalid_param(f"{room_id!r} is not a room id")
    return rooms


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid_param(f"{key} must be an integer from {low} to {high}")
    return value


class AdminUserRedactApi:
    def __init__(self, redactions: UserRedactions) -> None:
        self._redactions = redactions

    @admin_endpoint("POST", "/v1/user/{userId}/redact", action="user.redact_events")
    async def redact(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise invalid_param("reason must be a string")
        # Synapse's choice between puppeting the user and the admin: here the
        # admin always redacts (a deactivated user is in no room to redact from).
        if not isinstance(body.get("use_admin", True), bool):
            raise invalid_param("use_admin must be true or false")
        limit = _int(body, "limit", 1, MAX_LIMIT)
        redact_id = await self._redactions.request(
            req.user,
            req.params["userId"],
            rooms=_rooms(body),
            reason=reason,
            limit=DEFAULT_LIMIT if limit is None else limit,
            after_ts=_int(body, "after_ts", 0, BIGINT.stop - 1),
            before_ts=_int(body, "before_ts", 0, BIGINT.stop - 1),
        )
        return {"redact_id": redact_id}

    @admin_endpoint("GET", "/v1/user/redact_status/{redactId}")
    async def status(self, req: ClientRequest) -> dict[str, Any]:
        return await self._redactions.status(req.params["redactId"])
