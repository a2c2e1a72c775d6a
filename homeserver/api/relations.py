"""Event relationships and threads: /relations and /threads (client API v1)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint
from homeserver.errors import invalid_param
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.relations import RelationsService

DEFAULT_LIMIT = 5


def _limit(req: ClientRequest, *, minimum: int) -> int:
    raw = req.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param("limit must be an integer") from None
    if value < minimum:
        raise invalid_param(f"limit must be at least {minimum}")
    return value


class RelationsApi:
    def __init__(self, relations: RelationsService, formatter: EventFormatter) -> None:
        self._relations = relations
        self._formatter = formatter

    @endpoint("GET", "/rooms/{roomId}/relations/{eventId}", prefixes=CLIENT_V1, guest_ok=True)
    @endpoint(
        "GET", "/rooms/{roomId}/relations/{eventId}/{relType}", prefixes=CLIENT_V1, guest_ok=True
    )
    @endpoint(
        "GET",
        "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}",
        prefixes=CLIENT_V1,
        guest_ok=True,
    )
    async def relations(self, req: ClientRequest) -> dict[str, Any]:
        p, q = req.params, req.query
        direction = q.get("dir", "b")
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'")
        recurse = req.query_bool("recurse") if "recurse" in q else None
        page = await self._relations.relations(
            req.user,
            p["roomId"],
            p["eventId"],
            rel_type=p.get("relType"),
            event_type=p.get("eventType"),
            from_token=q.get("from"),
            to_token=q.get("to"),
            limit=_limit(req, minimum=0),
            forwards=direction == "f",
            recurse=recurse,
        )
        body: dict[str, Any] = {"chunk": await self._formatter.serialize(page.events, req.user)}
        if page.next_batch is not None:
            body["next_batch"] = page.next_batch
        if page.prev_batch is not None:
            body["prev_batch"] = page.prev_batch
        if page.recursion_depth is not None:
            body["recursion_depth"] = page.recursion_depth
        return body

    @endpoint("GET", "/rooms/{roomId}/threads", prefixes=CLIENT_V1)
    async def threads(self, req: ClientRequest) -> dict[str, Any]:
        include = req.query.get("include", "all")
        if include not in ("all", "participated"):
            raise invalid_param("include must be 'all' or 'participated'")
        page = await self._relations.threads(
            req.user,
            req.params["roomId"],
            participated_only=include == "participated",
            from_token=req.query.get("from"),
            limit=_limit(req, minimum=1),
        )
        body: dict[str, Any] = {"chunk": await self._formatter.serialize(page.roots, req.user)}
        if page.next_batch is not None:
            body["next_batch"] = page.next_batch
        return body
