"""`GET /_matrix/federation/v1/timestamp_to_event/{roomId}`: jump to date for other servers."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint
from federation.timestamps import TimestampServing
from homeserver.api.jump_to_date import parse_ts_dir


class FederationTimestampApi:
    def __init__(self, serving: TimestampServing) -> None:
        self._serving = serving

    @federation_endpoint("GET", FEDERATION_V1 + "/timestamp_to_event/{roomId}")
    async def timestamp_to_event(self, req: FederationRequest) -> dict[str, Any]:
        ts, forwards = parse_ts_dir(req.query)
        return await self._serving.serve(req.origin, req.params["roomId"], ts, forwards)
