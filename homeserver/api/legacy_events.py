"""The legacy client endpoints Element and SyTest still call: GET /events,
GET /events/{eventId}, GET /initialSync and GET /rooms/{roomId}/initialSync
(see homeserver/sync/event_stream.py and homeserver/sync/initial_sync.py)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import invalid_param
from homeserver.rooms.format import EventFormatter
from homeserver.sync.event_stream import EventStream
from homeserver.sync.initial_sync import InitialSync
from homeserver.sync.legacy_format import client_v1
from homeserver.sync.token import SyncToken

# Synapse's defaults: /events returns at most this many room events, the
# initial syncs this many messages per room.
DEFAULT_STREAM_LIMIT = 100
DEFAULT_MESSAGES_LIMIT = 10
MAX_LIMIT = 1000


def _number(req: ClientRequest, name: str, default: int) -> int:
    """A non-negative whole-number query parameter."""
    raw = req.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise invalid_param(f"{name} must be a non-negative integer")
    return int(raw)


def _limit(req: ClientRequest, default: int) -> int:
    return min(_number(req, "limit", default), MAX_LIMIT)


class LegacyEventsApi:
    def __init__(
        self, stream: EventStream, initial: InitialSync, formatter: EventFormatter
    ) -> None:
        self._stream = stream
        self._initial = initial
        self._formatter = formatter

    @endpoint("GET", "/events", guest_ok=True)
    async def events(self, req: ClientRequest) -> dict[str, Any]:
        # A stream page of no events could never move on: 0 means the default.
        limit = _limit(req, DEFAULT_STREAM_LIMIT) or DEFAULT_STREAM_LIMIT
        timeout = _number(req, "timeout", 0)
        raw_from = req.query.get("from")
        return await self._stream.stream(
            req.user,
            from_token=SyncToken.parse(raw_from) if raw_from else None,
            timeout_ms=timeout,
            limit=limit,
            room_id=req.query.get("room_id"),
        )

    @endpoint("GET", "/events/{eventId}")
    async def event(self, req: ClientRequest) -> dict[str, Any]:
        stored = await self._stream.event(req.user, req.params["eventId"])
        [event] = await self._formatter.serialize([stored], req.user)
        return client_v1(event)

    @endpoint("GET", "/initialSync")
    async def initial_sync(self, req: ClientRequest) -> dict[str, Any]:
        return await self._initial.initial_sync(
            req.user,
            limit=_limit(req, DEFAULT_MESSAGES_LIMIT),
            archived=req.query_bool("archived"),
        )

    @endpoint("GET", "/rooms/{roomId}/initialSync", guest_ok=True)
    async def room_initial_sync(self, req: ClientRequest) -> dict[str, Any]:
        return await self._initial.room_initial_sync(
            req.user, req.params["roomId"], limit=_limit(req, DEFAULT_MESSAGES_LIMIT)
        )
