"""Room reads over federation: events, state, auth chains, backfill, missing events."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint, query_int
from federation.serving import FederationReads
from homeserver.errors import MatrixError, bad_json


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_json(f"'{key}' must be a list of event ids")
    return value


def _event_id(req: FederationRequest) -> str:
    event_id = req.query.get("event_id")
    if not event_id:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing event_id")
    return event_id


class FederationRoomsApi:
    def __init__(self, reads: FederationReads) -> None:
        self._reads = reads

    @federation_endpoint("GET", FEDERATION_V1 + "/event/{eventId}")
    async def event(self, req: FederationRequest) -> dict[str, Any]:
        return await self._reads.event(req.origin, req.params["eventId"])

    @federation_endpoint("GET", FEDERATION_V1 + "/state/{roomId}")
    async def state(self, req: FederationRequest) -> dict[str, Any]:
        return await self._reads.state(req.origin, req.params["roomId"], _event_id(req))

    @federation_endpoint("GET", FEDERATION_V1 + "/state_ids/{roomId}")
    async def state_ids(self, req: FederationRequest) -> dict[str, Any]:
        return await self._reads.state_ids(req.origin, req.params["roomId"], _event_id(req))

    @federation_endpoint("GET", FEDERATION_V1 + "/event_auth/{roomId}/{eventId}")
    async def event_auth(self, req: FederationRequest) -> dict[str, Any]:
        p = req.params
        return await self._reads.event_auth(req.origin, p["roomId"], p["eventId"])

    @federation_endpoint("GET", FEDERATION_V1 + "/backfill/{roomId}")
    async def backfill(self, req: FederationRequest) -> dict[str, Any]:
        return await self._reads.backfill(
            req.origin, req.params["roomId"], req.query.getall("v", []), query_int(req, "limit")
        )

    @federation_endpoint("POST", FEDERATION_V1 + "/get_missing_events/{roomId}")
    async def get_missing_events(self, req: FederationRequest) -> dict[str, Any]:
        body = req.json()
        limit = body.get("limit", 10)
        min_depth = body.get("min_depth", 0)
        if type(limit) is not int or type(min_depth) is not int:
            raise bad_json("'limit' and 'min_depth' must be integers")
        return await self._reads.missing_events(
            req.origin,
            req.params["roomId"],
            earliest=_id_list(body, "earliest_events"),
            latest=_id_list(body, "latest_events"),
            limit=limit,
            min_depth=min_depth,
        )
