"""GET /_matrix/client/v1/mutual_rooms, and MSC2666's unstable
`/uk.half-shot.msc2666/user/mutual_rooms` that clients (Element's "mutual
rooms" in the user info) called before it was stable, as Synapse served it."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import invalid_param, missing_param
from homeserver.mutual_rooms import MutualRooms


def _one(req: ClientRequest, name: str) -> str | None:
    values = req.query.getall(name, [])
    if len(values) > 1:
        raise invalid_param(f"Duplicate {name} query parameter")
    return values[0] if values else None


class MutualRoomsApi:
    def __init__(self, mutual_rooms: MutualRooms) -> None:
        self._mutual_rooms = mutual_rooms

    @endpoint("GET", "/mutual_rooms", prefixes=("/_matrix/client/v1",))
    @endpoint(
        "GET",
        "/user/mutual_rooms",
        prefixes=("/_matrix/client/unstable/uk.half-shot.msc2666",),
    )
    async def mutual_rooms(self, req: ClientRequest) -> dict[str, Any]:
        user_id = _one(req, "user_id")
        if user_id is None:
            raise missing_param("The user_id query parameter is required")
        return await self._mutual_rooms.mutual_rooms(req.user, user_id, _one(req, "from"))
