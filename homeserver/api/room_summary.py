"""Room summaries (MSC3266): the stable path of spec v1.15 and the unstable
ones clients still call (matrix-js-sdk's getRoomSummary, Element Web)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint
from homeserver.rooms.room_summary import RoomSummaries

_UNSTABLE = ("/_matrix/client/unstable/im.nheko.summary",)


class RoomSummaryApi:
    def __init__(self, summaries: RoomSummaries) -> None:
        self._summaries = summaries

    @endpoint(
        "GET",
        "/room_summary/{roomIdOrAlias}",
        prefixes=CLIENT_V1,
        auth=False,
        optional_auth=True,
        guest_ok=True,
    )
    @endpoint(
        "GET",
        "/summary/{roomIdOrAlias}",
        prefixes=_UNSTABLE,
        auth=False,
        optional_auth=True,
        guest_ok=True,
    )
    @endpoint(
        "GET",
        "/rooms/{roomIdOrAlias}/summary",
        prefixes=_UNSTABLE,
        auth=False,
        optional_auth=True,
        guest_ok=True,
    )
    async def summary(self, req: ClientRequest) -> dict[str, Any]:
        return await self._summaries.summary(
            req.requester, req.params["roomIdOrAlias"], req.query.getall("via", [])
        )
