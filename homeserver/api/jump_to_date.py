"""`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event` (jump to date)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint
from homeserver.errors import MatrixError, invalid_param
from homeserver.rooms.jump_to_date import JumpToDate

# origin_server_ts is a signed 64-bit integer.
_MAX_TS = 2**63 - 1


def parse_ts_dir(query: Any) -> tuple[int, bool]:
    """The `ts` and `dir` query parameters: (time, forwards)."""
    ts, direction = query.get("ts"), query.get("dir")
    if ts is None or direction is None:
        raise MatrixError(400, "M_MISSING_PARAM", "ts and dir are required")
    if not ts.isdigit() or int(ts) > _MAX_TS:
        raise invalid_param("ts must be a timestamp in milliseconds")
    if direction not in ("f", "b"):
        raise invalid_param("dir must be 'f' or 'b'")
    return int(ts), direction == "f"


class JumpToDateApi:
    def __init__(self, jump: JumpToDate) -> None:
        self._jump = jump

    @endpoint("GET", "/rooms/{roomId}/timestamp_to_event", prefixes=CLIENT_V1)
    async def timestamp_to_event(self, req: ClientRequest) -> dict[str, Any]:
        ts, forwards = parse_ts_dir(req.query)
        return await self._jump.closest(req.user, req.params["roomId"], ts, forwards)
