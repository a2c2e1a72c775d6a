"""Parsing a sliding sync request body, in either wire format, into
homeserver/sliding_sync/model.py's values.

The unstable format (`/unstable/org.matrix.simplified_msc3575/sync`, what
matrix-rust-sdk, matrix-js-sdk and Synapse speak): `pos` and `timeout` in
the query, `ranges: [[0, 19]]`, `required_state: [["type", "state_key"]]`
with `*` wildcards, `$LAZY` and `$ME`, `filters.is_invite`. The stable
format (`/v4/sync`, MSC4186 as merged): `pos` and `timeout` in the body,
`range: [0, 19]`, `required_state: {include, exclude, lazy_members}`,
`filters.is_invited`.

Wrong types are 400 M_BAD_JSON; values out of bounds, unknown filters and
malformed room ids are 400 M_INVALID_PARAM. Nothing is stored before this
has accepted the whole body.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import bad_json, invalid_param
from homeserver.identifiers import is_valid_room_id
from homeserver.sliding_sync.model import (
    MEMBER,
    ListConfig,
    ListFilters,
    RequiredState,
    RoomConfig,
    StatePattern,
)

MAX_LISTS = 100
MAX_RANGES = 100
MAX_SUBSCRIPTIONS = 1000
MAX_REQUIRED_STATE = 1000
MAX_FILTER_ENTRIES = 1000
# A list's positions are 32-bit in every client; anything beyond is a mistake.
MAX_INDEX = 2**31 - 1
# MSC4186: "The server may cap this number."
MAX_TIMELINE_LIMIT = 1000
MAX_TIMEOUT_MS = 5 * 60 * 1000
_FILTER_KEYS = {
    "is_dm",
    "is_encrypted",
    "spaces",
    "room_types",
    "not_room_types",
    "tags",
    "not_tags",
}
# `is_tombstoned` is MSC3575's, which older matrix-rust-sdk releases still
# send; Synapse accepts it and does not apply it, and so do we (a 400 would
# lock those clients out).
_UNSTABLE_FILTER_KEYS = _FILTER_KEYS | {"is_invite", "room_name_like", "is_tombstoned"}
_STABLE_FILTER_KEYS = _FILTER_KEYS | {"is_invited"}


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_json(f"{what} must be an object")
    return value


def _int(value: Any, what: str, *, high: int = MAX_INDEX) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(f"{what} must be an integer")
    if not 0 <= value <= high:
        raise invalid_param(f"{what} must be between 0 and {high}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise bad_json(f"{what} must be a string")
    return value


def _strings(value: Any, what: str, *, nullable: bool = False) -> tuple[Any, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) or (nullable and v is None) for v in value
    ):
        raise bad_json(f"{what} must be a list of strings")
    if len(value) > MAX_FILTER_ENTRIES:
        raise invalid_param(f"{what} has more than {MAX_FILTER_ENTRIES} entries")
    return tuple(value)


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise bad_json(f"{what} must be a boolean")
    return value


def _range(value: Any, what: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise bad_json(f"{what} must be a pair of integers")
    start, end = _int(value[0], what), _int(value[1], what)
    if start > end:
        raise invalid_param(f"{what} is out of order")
    return start, end


def _pattern_unstable(pair: Any, user_id: str) -> StatePattern | None:
    """A [type, state_key] pair; None for the $LAZY marker."""
    if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
        raise bad_json("required_state entries must be [type, state_key] string pairs")
    event_type, state_key = pair
    if state_key == "$LAZY" and event_type == MEMBER:
        return None
    return StatePattern(
        None if event_type == "*" else event_type,
        None if state_key == "*" else user_id if state_key == "$ME" else state_key,
    )


def _required_unstable(value: Any, user_id: str) -> RequiredState:
    if not isinstance(value, list):
        raise bad_json("required_state must be a list")
    if len(value) > MAX_REQUIRED_STATE:
        raise invalid_param(f"required_state has more than {MAX_REQUIRED_STATE} entries")
    patterns = [_pattern_unstable(p, user_id) for p in value]
    return RequiredState(
        include=frozenset(p for p in patterns if p is not None),
        lazy=any(p is None for p in patterns),
    )


def _patterns_stable(value: Any, what: str, user_id: str) -> frozenset[StatePattern]:
    if not isinstance(value, list):
        raise bad_json(f"required_state.{what} must be a list")
    if len(value) > MAX_REQUIRED_STATE:
        raise invalid_param(f"required_state.{what} has more than {MAX_REQUIRED_STATE} entries")
    patterns = set()
    for element in value:
        element = _object(element, f"required_state.{what} entries")
        unknown = set(element) - {"type", "state_key"}
        if unknown:
            raise invalid_param(f"Unknown field in required_state.{what}: {sorted(unknown)[0]}")
        event_type = element.get("type")
        state_key = element.get("state_key")
        if event_type is not None:
            _string(event_type, "type")
        if state_key is not None:
            _string(state_key, "state_key")
        patterns.add(StatePattern(event_type, user_id if state_key == "$ME" else state_key))
    return frozenset(patterns)


def _required_stable(value: Any, user_id: str) -> RequiredState:
    value = _object(value, "required_state")
    return RequiredState(
        include=_patterns_stable(value.get("include", []), "include", user_id),
        exclude=_patterns_stable(value.get("exclude", []), "exclude", user_id),
        lazy=_bool(value.get("lazy_members", False), "lazy_members"),
    )


def _room_config(value: dict[str, Any], user_id: str, stable: bool) -> RoomConfig:
    limit = _int(value.get("timeline_limit", 0), "timeline_limit", high=MAX_INDEX)
    raw = value.get("required_state", {} if stable else [])
    required = _required_stable(raw, user_id) if stable else _required_unstable(raw, user_id)
    return RoomConfig(min(limit, MAX_TIMELINE_LIMIT), (required,))


def _filters(value: Any, stable: bool) -> ListFilters:
    value = _object(value, "filters")
    allowed = _STABLE_FILTER_KEYS if stable else _UNSTABLE_FILTER_KEYS
    unknown = set(value) - allowed
    if unknown:
        raise invalid_param(f"Unknown filter: {sorted(unknown)[0]}")

    if value.get("is_tombstoned") is not None:
        _bool(value["is_tombstoned"], "is_tombstoned")

    def flag(key: str) -> bool | None:
        return None if value.get(key) is None else _bool(value[key], key)

    def strings(key: str, *, nullable: bool = False) -> tuple[Any, ...] | None:
        return None if value.get(key) is None else _strings(value[key], key, nullable=nullable)

    spaces = strings("spaces")
    if spaces is not None and not all(is_valid_room_id(s) for s in spaces):
        raise invalid_param("spaces must be room ids")
    return ListFilters(
        is_dm=flag("is_dm"),
        is_encrypted=flag("is_encrypted"),
        is_invite=flag("is_invited" if stable else "is_invite"),
        spaces=spaces,
        room_types=strings("room_types", nullable=True),
        not_room_types=strings("not_room_types", nullable=True) or (),
        tags=strings("tags"),
        not_tags=strings("not_tags") or (),
        room_name_like=None
        if value.get("room_name_like") is None
        else _string(value["room_name_like"], "room_name_like"),
    )


def _list(name: str, value: Any, user_id: str, stable: bool) -> ListConfig:
    value = _object(value, f"lists.{name}")
    ranges: tuple[tuple[int, int], ...] | None
    if stable:
        ranges = None if value.get("range") is None else (_range(value["range"], "range"),)
    elif value.get("ranges") is None:
        ranges = None
    else:
        raw = value["ranges"]
        if not isinstance(raw, list):
            raise bad_json("ranges must be a list of pairs")
        if len(raw) > MAX_RANGES:
            raise invalid_param(f"A list may have at most {MAX_RANGES} ranges")
        ranges = tuple(_range(r, "ranges") for r in raw)
    return ListConfig(
        ranges=ranges,
        room=_room_config(value, user_id, stable),
        filters=_filters(value.get("filters", {}), stable),
    )


def parse_lists(value: Any, user_id: str, *, stable: bool) -> dict[str, ListConfig]:
    value = _object(value, "lists")
    if len(value) > MAX_LISTS:
        raise invalid_param(f"At most {MAX_LISTS} lists")
    for name in value:
        if not name or len(name) > 64:
            raise invalid_param("List names must be 1 to 64 characters")
    return {name: _list(name, v, user_id, stable) for name, v in value.items()}


def parse_subscriptions(value: Any, user_id: str, *, stable: bool) -> dict[str, RoomConfig]:
    value = _object(value, "room_subscriptions")
    if len(value) > MAX_SUBSCRIPTIONS:
        raise invalid_param(f"At most {MAX_SUBSCRIPTIONS} room subscriptions")
    result = {}
    for room_id, config in value.items():
        if not is_valid_room_id(room_id):
            raise invalid_param(f"Not a room id: {room_id}")
        result[room_id] = _room_config(_object(config, "room subscription"), user_id, stable)
    return result


def parse_conn_id(value: Any) -> str:
    if value is None:
        return ""
    conn_id = _string(value, "conn_id")
    if len(conn_id) > 64:
        raise invalid_param("conn_id is longer than 64 characters")
    return conn_id


def parse_timeout(value: Any) -> int:
    """A timeout in milliseconds, capped at five minutes."""
    if value is None:
        return 0
    if isinstance(value, str):
        if not value.isdigit():
            raise invalid_param("timeout must be a whole number of milliseconds")
        value = int(value)
    return min(_int(value, "timeout", high=2**53), MAX_TIMEOUT_MS)


def parse_pos(value: Any) -> str | None:
    if value is None:
        return None
    pos = _string(value, "pos")
    if not pos or len(pos) > 64:
        raise invalid_param("Invalid pos")
    return pos
