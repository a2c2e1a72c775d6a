"""Delayed events (MSC4140) over HTTP, under the MSC's unstable prefix.

- `PUT /rooms/{roomId}/delayed_event/{eventType}/{txnId}` (the MSC's current
  scheduling endpoint: `delay_ms`, `state_key`, `content` in the body);
  the `org.matrix.msc4140.delay` query parameter of `/send` and `/state`
  (what Element, matrix-js-sdk and Synapse use) comes here through
  `schedule_from_query`.
- `POST /delayed_events/{delay_id}/{action}` and the older
  `POST /delayed_events/{delay_id}` with `{"action": ...}`: with or without
  an access token, as Synapse serves them (see DelayedEvents.act).
- `GET /delayed_events` (Synapse's and the MSC's `delayed_events` list, plus
  the `scheduled` / `finalised` / `next_batch` form with `status`,
  `delay_id` and `from` that matrix-js-sdk asks for) and
  `GET /delayed_events/{delay_id}`.

The management endpoints are rate limited per user, or per IP address
without a token (Synapse's `rc_delayed_event_mgmt`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.appservice_ts import appservice_ts
from homeserver.api.http import Authenticator, ClientRequest, endpoint, json_response
from homeserver.delayed_events.service import (
    ACTIONS,
    CapReachedError,
    DelayedEvents,
    details,
    finalised_entry,
)
from homeserver.errors import MatrixError, bad_json, invalid_param, missing_param
from homeserver.ratelimit import RateLimiter
from homeserver.requester import Requester

PREFIX = ("/_matrix/client/unstable/org.matrix.msc4140",)
DELAY_PARAM = "org.matrix.msc4140.delay"
PARENT_PARAM = "org.matrix.msc4140.parent_delay_id"
# Look-up page size (each of scheduled and finalised).
PAGE = 100
# A delay in ms beyond this is no integer a client could mean (2**53 - 1).
_MAX_INT = 2**53 - 1


def delay_of(req: ClientRequest) -> int | None:
    """The `org.matrix.msc4140.delay` of a /send or /state request, if any."""
    if req.query.get(PARENT_PARAM) is not None:
        # An earlier MSC text's delay groups, which Synapse never served.
        raise invalid_param(f"{PARENT_PARAM} is not supported")
    raw = req.query.get(DELAY_PARAM)
    if raw is None:
        return None
    digits = raw[1:] if raw.startswith("-") else raw
    if not digits.isascii() or not digits.isdigit() or int(digits) > _MAX_INT:
        raise invalid_param(f"{DELAY_PARAM} must be an integer number of milliseconds")
    return int(raw)


def _answer_schedule(delay_id: str) -> dict[str, Any]:
    return {"delay_id": delay_id}


def _cap_response(e: CapReachedError) -> web.Response:
    response = json_response(e.status, e.to_json())
    response.headers["Retry-After"] = str(e.retry_after_s)
    return response


async def schedule_from_query(
    delayed: DelayedEvents,
    req: ClientRequest,
    delay_ms: int,
    content: dict[str, Any],
    *,
    state_key: str | None,
    txn_id: str | None,
    origin_server_ts: int | None,
) -> dict[str, Any] | web.Response:
    """A /send or /state request with a delay: `{"delay_id"}` instead of sending."""
    try:
        delay_id = await delayed.schedule(
            req.user,
            req.params["roomId"],
            req.params["eventType"],
            content,
            delay_ms,
            state_key=state_key,
            txn_id=txn_id,
            origin_server_ts=origin_server_ts,
        )
    except CapReachedError as e:
        return _cap_response(e)
    return _answer_schedule(delay_id)


class DelayedEventsApi:
    def __init__(
        self, delayed: DelayedEvents, authenticator: Authenticator, limiter: RateLimiter
    ) -> None:
        self._delayed = delayed
        self._auth = authenticator
        self._limiter = limiter

    @endpoint(
        "PUT",
        "/rooms/{roomId}/delayed_event/{eventType}/{txnId}",
        prefixes=PREFIX,
        guest_ok=True,
    )
    async def schedule(self, req: ClientRequest) -> dict[str, Any] | web.Response:
        body = req.json()
        delay_ms = body.get("delay_ms")
        if delay_ms is None:
            raise missing_param("'delay_ms' is required")
        if type(delay_ms) is not int:
            raise bad_json("'delay_ms' must be an integer")
        content = body.get("content")
        if content is None:
            raise missing_param("'content' is required")
        if not isinstance(content, dict):
            raise bad_json("'content' must be an object")
        state_key = body.get("state_key")
        if state_key is not None and not isinstance(state_key, str):
            raise bad_json("'state_key' must be a string")
        try:
            delay_id = await self._delayed.schedule(
                req.user,
                req.params["roomId"],
                req.params["eventType"],
                content,
                delay_ms,
                state_key=state_key,
                txn_id=req.params["txnId"],
                origin_server_ts=appservice_ts(req),
            )
        except CapReachedError as e:
            return _cap_response(e)
        return _answer_schedule(delay_id)

    @endpoint(
        "POST",
        "/delayed_events/{delayId}/{action}",
        auth=False,
        prefixes=PREFIX,
    )
    async def action_in_path(self, req: ClientRequest) -> dict[str, Any]:
        action = req.params["action"]
        if action not in ACTIONS:
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        requester = await self._management_requester(req)
        await self._delayed.act(req.params["delayId"], action, requester)
        return {}

    @endpoint("POST", "/delayed_events/{delayId}", auth=False, prefixes=PREFIX)
    async def action_in_body(self, req: ClientRequest) -> dict[str, Any]:
        """The earlier MSC form, which js-sdk falls back to."""
        body = req.json()
        if "action" not in body:
            raise missing_param("'action' is missing")
        action = body["action"]
        if action not in ACTIONS:
            raise invalid_param("'action' is not one of 'cancel', 'restart', 'send'")
        requester = await self._management_requester(req)
        await self._delayed.act(req.params["delayId"], action, requester)
        return {}

    @endpoint("GET", "/delayed_events", prefixes=PREFIX, guest_ok=True)
    async def lookup(self, req: ClientRequest) -> dict[str, Any]:
        self._limiter.check(req.user.user_id)
        status = req.query.get("status")
        if status not in (None, "scheduled", "finalised"):
            raise invalid_param("status must be 'scheduled' or 'finalised'")
        delay_ids = req.query.getall("delay_id", []) or None
        raw_from = req.query.get("from", "0")
        if not raw_from.isascii() or not raw_from.isdigit() or len(raw_from) > 9:
            raise invalid_param("Unknown 'from' token")
        offset = int(raw_from)
        scheduled, finalised = await self._delayed.lookup(
            req.user, status=status, delay_ids=delay_ids, offset=offset, limit=PAGE + 1
        )
        body: dict[str, Any] = {
            "delayed_events": [details(r) for r in scheduled[:PAGE]],
            "scheduled": [details(r) for r in scheduled[:PAGE]],
            "finalised": [finalised_entry(r) for r in finalised[:PAGE]],
        }
        if len(scheduled) > PAGE or len(finalised) > PAGE:
            body["next_batch"] = str(offset + PAGE)
        return body

    @endpoint("GET", "/delayed_events/{delayId}", prefixes=PREFIX, guest_ok=True)
    async def get_one(self, req: ClientRequest) -> dict[str, Any]:
        self._limiter.check(req.user.user_id)
        return await self._delayed.get(req.params["delayId"], req.user)

    async def _management_requester(self, req: ClientRequest) -> Requester | None:
        """Who manages the delayed event: the token's user, or nobody (the
        delay id is then the credential); rate limited either way."""
        if Authenticator.token_of(req) is None:
            self._limiter.check(f"ip:{req.ip or ''}")
            return None
        # The Authenticator reads only the headers and query, which a
        # ClientRequest carries as the aiohttp request does.
        requester = await self._auth.requester(req, req.ip)  # type: ignore[arg-type]
        self._limiter.check(requester.user_id)
        return requester
