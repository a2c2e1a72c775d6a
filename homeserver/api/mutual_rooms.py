"""GET /_matrix/client/v1/mutual_rooms, and MSC2666's unstable
`/uk.half-shot.msc2666/user/mutual_rooms` that clients (Element's "mutual
rooms" in the user info) called before it was stable, as Synapse served it.
On the unstable path the paging names of an earlier draft, which
matrix-js-sdk's `_unstable_getSharedRooms` still sends and reads
(`batch_token`, `next_batch_token`), work too."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import invalid_param, missing_param
from homeserver.mutual_rooms import MutualRooms

UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666"


def _one(req: ClientRequest, name: str) -> str | None:
    values = req.query.getall(name, [])
    if len(values) > 1:
        raise invalid_param(f"Duplicate {name} query parameter")
    return values[0] if values else None


class MutualRoomsApi:
    def __init__(self, mutual_rooms: MutualRooms) -> None:
        self._mutual_rooms = mutual_rooms

    @endpoint("GET", "/mutual_rooms", prefixes=("/_matrix/client/v1",))
    @endpoint("GET", "/user/mutual_rooms", prefixes=(UNSTABLE,))
    async def mutual_rooms(self, req: ClientRequest) -> dict[str, Any]:
        user_id = _one(req, "user_id")
        if user_id is None:
            raise missing_param("The user_id query parameter is required")
        unstable = req.path.startswith(UNSTABLE)
        token = _one(req, "from")
        if token is None and unstable:
            token = _one(req, "batch_token")
        body = await self._mutual_rooms.mutual_rooms(req.user, user_id, token)
        if unstable and "next_batch" in body:
            body["next_batch_token"] = body["next_batch"]
        return body
