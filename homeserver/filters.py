"""Sync filters: validated when uploaded, so /sync can trust what it loads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from canonicaljson import encode_canonical_json

from homeserver.errors import bad_json, forbidden, not_found
from homeserver.identifiers import is_valid_room_id, is_valid_user_id
from storage.filters import FilterStore

_STRING_LISTS = ("types", "not_types", "senders", "not_senders", "rooms", "not_rooms")
_ROOM_EVENT_FILTERS = ("state", "timeline", "ephemeral", "account_data")
# The lists whose entries must be ids of their kind, and what they must be.
_ID_LISTS: dict[str, tuple[Callable[[str], bool], str]] = {
    "senders": (is_valid_user_id, "user ids"),
    "not_senders": (is_valid_user_id, "user ids"),
    "rooms": (is_valid_room_id, "room ids"),
    "not_rooms": (is_valid_room_id, "room ids"),
}


def _check_string_list(where: str, key: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise bad_json(f"{where}{key} must be a list of strings")
    if key in _ID_LISTS:
        valid, what = _ID_LISTS[key]
        if not all(valid(s) for s in value):
            raise bad_json(f"{where}{key} must hold {what}")


def _check_event_filter(where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise bad_json(f"{where} must be an object")
    for key in _STRING_LISTS:
        if key in value:
            _check_string_list(f"{where}.", key, value[key])
    # 0 is allowed: a client that wants only state asks for no timeline events.
    limit = value.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise bad_json(f"{where}.limit must be a non-negative integer")
    for flag in (
        "lazy_load_members",
        "include_redundant_members",
        "contains_url",
        "unread_thread_notifications",
    ):
        if flag in value and not isinstance(value[flag], bool):
            raise bad_json(f"{where}.{flag} must be true or false")


def validate_filter(definition: Any) -> None:
    """Reject a filter whose parts have the wrong types (400 M_BAD_JSON)."""
    if not isinstance(definition, dict):
        raise bad_json("A filter must be a JSON object")
    for key in ("presence", "account_data"):
        if key in definition:
            _check_event_filter(key, definition[key])
    if "event_fields" in definition and (
        not isinstance(definition["event_fields"], list)
        or not all(isinstance(f, str) for f in definition["event_fields"])
    ):
        raise bad_json("event_fields must be a list of strings")
    if definition.get("event_format", "client") not in ("client", "federation"):
        raise bad_json("event_format must be 'client' or 'federation'")
    room = definition.get("room")
    if room is None:
        return
    if not isinstance(room, dict):
        raise bad_json("room must be an object")
    for key in ("rooms", "not_rooms"):
        if key in room:
            _check_string_list("room.", key, room[key])
    if "include_leave" in room and not isinstance(room["include_leave"], bool):
        raise bad_json("room.include_leave must be true or false")
    for key in _ROOM_EVENT_FILTERS:
        if key in room:
            _check_event_filter(f"room.{key}", room[key])


class FilterService:
    def __init__(self, store: FilterStore) -> None:
        self._store = store

    async def create(self, requester_id: str, user_id: str, definition: Any) -> str:
        if requester_id != user_id:
            raise forbidden("Cannot create filters for another user")
        validate_filter(definition)
        filter_id = await self._store.add(user_id, encode_canonical_json(definition).decode())
        return str(filter_id)

    async def get(self, requester_id: str, user_id: str, filter_id: str) -> dict[str, Any]:
        if requester_id != user_id:
            raise forbidden("Cannot read another user's filters")
        if not filter_id.isdigit() or len(filter_id) > 18:
            raise not_found("No such filter")
        found = await self._store.get(user_id, int(filter_id))
        if found is None:
            raise not_found("No such filter")
        return json.loads(found)
