"""Simplified sliding sync (MSC4186): the unstable endpoint clients speak
today and the stable `/v4/sync`, over one engine (homeserver/sliding_sync/).

The two differ in where `pos` and `timeout` are (query or body), in the
request shapes (homeserver/api/sliding_sync_body.py) and in a few response
names: the unstable format, as Synapse serves it and matrix-rust-sdk reads
it, has `timeline`, `invite_state` / `knock_state` and
`unstable_expanded_timeline`, and neither the rooms' `membership` and
`lists` nor stubs of deleted state; the stable one has `timeline_events`,
`stripped_state`, `expanded_timeline`, and all of those.
"""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.sliding_sync_body import (
    parse_conn_id,
    parse_lists,
    parse_pos,
    parse_subscriptions,
    parse_timeout,
)
from homeserver.errors import bad_json, invalid_param
from homeserver.sliding_sync.extensions import SlidingSyncExtensions
from homeserver.sliding_sync.model import SlidingSyncRequest
from homeserver.sliding_sync.service import SlidingSyncService

UNSTABLE_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
STABLE_PATH = "/_matrix/client/v4/sync"
_PRESENCE_STATES = ("online", "offline", "unavailable")
_UNSTABLE_ONLY = ("lists", "membership")


def _presence(value: Any) -> str:
    if value is None:
        return "online"
    if value not in _PRESENCE_STATES:
        raise invalid_param("set_presence must be online, offline or unavailable")
    return str(value)


def _unstable_room(entry: dict[str, Any]) -> dict[str, Any]:
    room = {k: v for k, v in entry.items() if k not in _UNSTABLE_ONLY}
    if "required_state" in room:
        room["required_state"] = [e for e in room["required_state"] if "content" in e]
    for key in ("name", "avatar"):
        if key in room and room[key] is None:
            del room[key]
    if "expanded_timeline" in room:
        room["unstable_expanded_timeline"] = room.pop("expanded_timeline")
    if "stripped_state" in room:
        stripped = room.pop("stripped_state")
        if entry.get("membership") in ("invite", "knock"):
            room[f"{entry['membership']}_state"] = stripped
    return room


def _stable_room(entry: dict[str, Any]) -> dict[str, Any]:
    room = dict(entry)
    if "timeline" in room:
        room["timeline_events"] = room.pop("timeline")
    return room


class SlidingSyncApi:
    def __init__(self, service: SlidingSyncService, extensions: SlidingSyncExtensions) -> None:
        self._service = service
        self._extensions = extensions

    @endpoint("POST", UNSTABLE_PATH, prefixes=("",), cancellable=True)
    async def unstable(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        request = self._request(
            req,
            body,
            pos=parse_pos(req.query.get("pos")),
            timeout_ms=parse_timeout(req.query.get("timeout")),
            set_presence=_presence(req.query.get("set_presence")),
            stable=False,
        )
        response = await self._service.sync(req.user, request)
        response["rooms"] = {r: _unstable_room(e) for r, e in response["rooms"].items()}
        return response

    @endpoint("POST", STABLE_PATH, prefixes=("",), cancellable=True)
    async def stable(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        timeout = body.get("timeout")
        if isinstance(timeout, str):
            raise bad_json("timeout must be an integer")
        request = self._request(
            req,
            body,
            pos=parse_pos(body.get("pos")),
            timeout_ms=parse_timeout(timeout),
            set_presence=_presence(body.get("set_presence")),
            stable=True,
        )
        response = await self._service.sync(req.user, request)
        response["rooms"] = {r: _stable_room(e) for r, e in response["rooms"].items()}
        return response

    def _request(
        self,
        req: ClientRequest,
        body: dict[str, Any],
        *,
        pos: str | None,
        timeout_ms: int,
        set_presence: str,
        stable: bool,
    ) -> SlidingSyncRequest:
        user_id = req.user.user_id
        return SlidingSyncRequest(
            conn_id=parse_conn_id(body.get("conn_id")),
            lists=parse_lists(body.get("lists", {}), user_id, stable=stable),
            subscriptions=parse_subscriptions(
                body.get("room_subscriptions", {}), user_id, stable=stable
            ),
            extensions=self._extensions.parse(body.get("extensions", {})),
            pos=pos,
            timeout_ms=timeout_ms,
            set_presence=set_presence,
        )
