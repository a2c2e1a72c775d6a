"""Server-side search, and reporting events and rooms."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_bool, opt_str, opt_str_list, req_str
from homeserver.errors import bad_json, invalid_param
from homeserver.rooms.reports import ReportService
from homeserver.rooms.search import KEY_TYPES, EventContextSpec, SearchCriteria, SearchService

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 100


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise bad_json(f"'{key}' must be an object")
    return value


def _count(body: dict[str, Any], key: str, default: int, maximum: int, minimum: int = 0) -> int:
    """A non-negative integer field, capped at `maximum` (larger asks get the cap)."""
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_json(f"'{key}' must be an integer of at least {minimum}")
    return min(value, maximum)


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def parse_room_events(criteria: dict[str, Any]) -> SearchCriteria:
    """The `room_events` criteria of a /search body; 400 M_BAD_JSON on wrong shapes."""
    term = req_str(criteria, "search_term")
    keys = opt_str_list(criteria, "keys")
    if keys is not None:
        unknown = [k for k in keys if k not in KEY_TYPES]
        if unknown:
            raise invalid_param(f"Unknown search keys: {', '.join(unknown)}")
    order_by = criteria.get("order_by", "rank")
    if order_by not in ("rank", "recent"):
        raise invalid_param("order_by must be 'rank' or 'recent'")
    room_filter = _object(criteria, "filter") or {}
    context = _object(criteria, "event_context")
    groupings = _object(criteria, "groupings") or {}
    group_by = groupings.get("group_by", [])
    if not isinstance(group_by, list) or not all(
        isinstance(g, dict) and g.get("key") in ("room_id", "sender") for g in group_by
    ):
        raise bad_json("groupings.group_by must be a list of {key: room_id|sender}")
    return SearchCriteria(
        search_term=term,
        keys=tuple(dict.fromkeys(keys if keys else KEY_TYPES)),
        order_by_rank=order_by == "rank",
        limit=_count(room_filter, "limit", DEFAULT_LIMIT, MAX_LIMIT, minimum=1),
        rooms=_tuple(opt_str_list(room_filter, "rooms")),
        not_rooms=_tuple(opt_str_list(room_filter, "not_rooms")) or (),
        senders=_tuple(opt_str_list(room_filter, "senders")),
        not_senders=_tuple(opt_str_list(room_filter, "not_senders")) or (),
        types=_tuple(opt_str_list(room_filter, "types")),
        not_types=_tuple(opt_str_list(room_filter, "not_types")) or (),
        event_context=EventContextSpec(
            before_limit=_count(context, "before_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
            after_limit=_count(context, "after_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
            include_profile=opt_bool(context, "include_profile", False),
        )
        if context is not None
        else None,
        include_state=opt_bool(criteria, "include_state", False),
        group_by=tuple(dict.fromkeys(g["key"] for g in group_by)),
    )


class SearchApi:
    def __init__(self, search: SearchService, reports: ReportService) -> None:
        self._search = search
        self._reports = reports

    @endpoint("POST", "/search", cancellable=True)
    async def search(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        categories = _object(body, "search_categories")
        if categories is None:
            raise bad_json("'search_categories' is required")
        result: dict[str, Any] = {}
        room_events = _object(categories, "room_events")
        if room_events is not None:
            result["room_events"] = await self._search.search_room_events(
                req.user, parse_room_events(room_events), req.query.get("next_batch")
            )
        return {"search_categories": result}

    @endpoint("POST", "/rooms/{roomId}/report/{eventId}")
    async def report_event(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        score = body.get("score")
        if score is not None and (
            not isinstance(score, int) or isinstance(score, bool) or not -100 <= score <= 0
        ):
            raise bad_json("'score' must be an integer from -100 to 0")
        await self._reports.report_event(
            req.user, req.params["roomId"], req.params["eventId"], opt_str(body, "reason"), score
        )
        return {}

    @endpoint("POST", "/rooms/{roomId}/report")
    async def report_room(self, req: ClientRequest) -> dict[str, Any]:
        reason = req_str(req.json(), "reason")
        await self._reports.report_room(req.user, req.params["roomId"], reason)
        return {}
