"""Room history reads: /messages, /context, /members, /joined_members, state
and single events (see homeserver/rooms/history.py for tokens and access)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import MatrixError, invalid_param
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.history import HistoryService, RoomEventFilter, parse_membership
from homeserver.strict_json import parse_strict_json

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


def _limit(req: ClientRequest, default: int) -> int:
    """The `limit` query parameter: a non-negative integer, capped at MAX_LIMIT."""
    raw = req.query.get("limit")
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise invalid_param("limit must be a non-negative integer")
    return min(int(raw), MAX_LIMIT)


def _filter(req: ClientRequest) -> RoomEventFilter:
    raw = req.query.get("filter")
    if raw is None:
        return RoomEventFilter()
    try:
        value = parse_strict_json(raw)
    except MatrixError as e:
        raise invalid_param(f"filter must be a JSON RoomEventFilter: {e.message}") from None
    return RoomEventFilter.parse(value)


class RoomHistoryApi:
    def __init__(self, history: HistoryService, formatter: EventFormatter) -> None:
        self._history = history
        self._formatter = formatter

    @endpoint("GET", "/rooms/{roomId}/messages", guest_ok=True)
    async def messages(self, req: ClientRequest) -> dict[str, Any]:
        # The spec makes dir required; like Synapse, a missing dir means forwards.
        direction = req.query.get("dir", "f")
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'")
        page = await self._history.messages(
            req.user,
            req.params["roomId"],
            backwards=direction == "b",
            from_token=req.query.get("from"),
            to_token=req.query.get("to"),
            limit=_limit(req, DEFAULT_LIMIT),
            event_filter=_filter(req),
        )
        body: dict[str, Any] = {
            "chunk": await self._formatter.serialize(page.events, req.user),
            "start": page.start,
        }
        if page.end is not None:
            body["end"] = page.end
        if page.state:
            body["state"] = await self._formatter.serialize(page.state, req.user)
        return body

    @endpoint("GET", "/rooms/{roomId}/context/{eventId}", guest_ok=True)
    async def context(self, req: ClientRequest) -> dict[str, Any]:
        found = await self._history.context(
            req.user,
            req.params["roomId"],
            req.params["eventId"],
            limit=_limit(req, DEFAULT_LIMIT),
            event_filter=_filter(req),
        )
        timeline = await self._formatter.serialize(
            [found.event, *found.before, *found.after], req.user
        )
        split = 1 + len(found.before)
        return {
            "event": timeline[0],
            "events_before": timeline[1:split],
            "events_after": timeline[split:],
            "state": await self._formatter.serialize(found.state, req.user),
            "start": found.start,
            "end": found.end,
        }

    @endpoint("GET", "/rooms/{roomId}/event/{eventId}", guest_ok=True)
    async def event(self, req: ClientRequest) -> dict[str, Any]:
        stored = await self._history.event(req.user, req.params["roomId"], req.params["eventId"])
        [event] = await self._formatter.serialize([stored], req.user)
        return event

    @endpoint("GET", "/rooms/{roomId}/members", guest_ok=True)
    async def members(self, req: ClientRequest) -> dict[str, Any]:
        events = await self._history.members(
            req.user,
            req.params["roomId"],
            at=req.query.get("at"),
            membership=parse_membership(req.query.get("membership"), "membership"),
            not_membership=parse_membership(req.query.get("not_membership"), "not_membership"),
        )
        return {"chunk": await self._formatter.serialize(events, req.user)}

    @endpoint("GET", "/rooms/{roomId}/joined_members")
    async def joined_members(self, req: ClientRequest) -> dict[str, Any]:
        return {"joined": await self._history.joined_members(req.user, req.params["roomId"])}

    @endpoint("GET", "/rooms/{roomId}/state", guest_ok=True)
    async def state(self, req: ClientRequest) -> Any:
        events = await self._history.room_state(req.user, req.params["roomId"])
        return await self._formatter.serialize(events, req.user)

    @endpoint("GET", "/rooms/{roomId}/state/{eventType}", guest_ok=True)
    @endpoint("GET", "/rooms/{roomId}/state/{eventType}/", guest_ok=True)
    @endpoint("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", guest_ok=True)
    async def state_event(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        # `format` (spec v1.16): `content` (the default) or the whole `event`.
        form = req.query.get("format", "content")
        if form not in ("content", "event"):
            raise invalid_param("format must be 'content' or 'event'")
        stored = await self._history.state_event(
            req.user, p["roomId"], p["eventType"], p.get("stateKey", "")
        )
        [event] = await self._formatter.serialize([stored], req.user)
        return event if form == "event" else event["content"]
