"""Power levels: reading them from a state map, and the rules for changing them.

Reading is deliberately forgiving and writing strict. An accepted
`m.room.power_levels` event of rooms 1-9 may still hold values that are not
integers in keys the rules never validated there (only `users` is checked
before room 10); such a value is read as if it were absent, so that one odd
event from years ago cannot wedge a room. New power levels events are held to
exactly what the spec of their room version demands, no more, so that this
server accepts and rejects the same events as every other server.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from homeserver.events.auth._common import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    AuthEvents,
    is_valid_user_id,
)
from homeserver.events.errors import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion

Level = int | float
"""An int, or `math.inf` for the room creators of room 12 and later."""

# The top-level levels whose addition, change or removal the rules check.
_TOP_LEVEL_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)

# Defaults from the m.room.power_levels schema; they also apply when the room
# has no power levels event at all.
_DEFAULTS: Mapping[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}

# Rooms 1-9 accept "stringy" levels: optional ASCII whitespace around an
# optionally signed run of decimal digits ("100", " +0100 ", "-5").
_STRINGY_LEVEL_RE = re.compile(r"[ \t\n\r\f\v]*[+-]?[0-9]+[ \t\n\r\f\v]*")

_EMPTY: Mapping[str, Any] = {}


def parse_level(room_version: RoomVersion, value: object) -> int | None:
    """The integer a power level value stands for, or None if it is not one.

    Room 10 on accepts only JSON integers. Rooms 1-9 also accept strings of an
    integer, and rooms 1-5 (which do not enforce canonical JSON) also accept
    finite floats, truncated towards zero. Booleans are never levels, even
    though Python counts them as ints.
    """
    if type(value) is int:
        return value
    if room_version.enforce_int_power_levels:
        return None
    if type(value) is str:
        if _STRINGY_LEVEL_RE.fullmatch(value) is None:
            return None
        try:
            return int(value)
        except ValueError:  # more digits than Python converts
            return None
    if type(value) is float and not room_version.strict_canonicaljson and math.isfinite(value):
        return int(value)
    return None


@functools.lru_cache(maxsize=4096)
def _creators(create: Event) -> frozenset[str]:
    """The room creators of a room 12+ create event: its sender and additional_creators.

    Cached per create event because it is needed for every power level lookup
    and a room has exactly one create event.
    """
    additional = create.content.get("additional_creators")
    if not isinstance(additional, list):
        return frozenset((create.sender,))
    return frozenset((create.sender, *(c for c in additional if isinstance(c, str))))


def _level_in(room_version: RoomVersion, content: Mapping[str, Any], name: str) -> int:
    """A top-level level of power levels content, or its default if absent or invalid."""
    value = content.get(name)
    if value is not None:
        level = parse_level(room_version, value)
        if level is not None:
            return level
    return _DEFAULTS[name]


def get_power_level(room_version: RoomVersion, user_id: str, auth_events: AuthEvents) -> Level:
    """The power level of `user_id` given the state map `auth_events`.

    Room creators have `math.inf` from room 12 on (the create event must be in
    the map for them to be recognised). Otherwise the level comes from the
    power levels event's `users`, else `users_default`. A room without a power
    levels event gives 100 to its creator (`content.creator` up to room 10, the
    create event's sender from room 11) and 0 to everybody else.
    """
    create = auth_events.get(CREATE_KEY)
    if room_version.privileged_creators and create is not None and user_id in _creators(create):
        return math.inf
    power_levels = auth_events.get(POWER_LEVELS_KEY)
    if power_levels is not None:
        content = power_levels.content
        users = content.get("users")
        if isinstance(users, Mapping):
            value = users.get(user_id)
            if value is not None:
                level = parse_level(room_version, value)
                if level is not None:
                    return level
        return _level_in(room_version, content, "users_default")
    if create is None or room_version.privileged_creators:
        return 0
    if room_version.implicit_room_creator:
        creator = create.sender
    else:
        creator = create.content.get("creator")
    return 100 if creator == user_id else 0


def get_named_level(room_version: RoomVersion, name: str, auth_events: AuthEvents) -> int:
    """One of the named levels ("invite", "kick", "ban", "redact", "users_default",
    "events_default", "state_default"), falling back to the spec's default.

    The redaction pipeline of room 3+ needs the redact level, which the auth
    rules themselves no longer consult.
    """
    power_levels = auth_events.get(POWER_LEVELS_KEY)
    if power_levels is None:
        return _DEFAULTS[name]
    return _level_in(room_version, power_levels.content, name)


def get_required_level(
    room_version: RoomVersion,
    event_type: str,
    state_key: str | None,
    auth_events: AuthEvents,
) -> int:
    """The level needed to send an event of `event_type`: its entry in `events`,
    else `state_default` for state events (`state_key` not None) or
    `events_default` for the others.
    """
    power_levels = auth_events.get(POWER_LEVELS_KEY)
    content = _EMPTY if power_levels is None else power_levels.content
    events = content.get("events")
    if isinstance(events, Mapping):
        value = events.get(event_type)
        if value is not None:
            level = parse_level(room_version, value)
            if level is not None:
                return level
    return _level_in(
        room_version, content, "state_default" if state_key is not None else "events_default"
    )


def _as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _changes(
    room_version: RoomVersion, old: Mapping[str, Any], new: Mapping[str, Any]
) -> Iterator[tuple[str, int | None, int | None]]:
    """(key, old level, new level) for every key whose level differs.

    None stands for "absent" (or, in old rooms, "not a level"). Keys are
    visited in the order of the old content, then the new one, so the same
    event always fails on the same key. Levels are compared after parsing, so
    rewriting "50" as 50 is no change.
    """
    for key, raw in old.items():
        before = parse_level(room_version, raw)
        after = parse_level(room_version, new[key]) if key in new else None
        if before != after:
            yield key, before, after
    for key, raw in new.items():
        if key not in old:
            after = parse_level(room_version, raw)
            if after is not None:
                yield key, None, after


def _check_shape(room_version: RoomVersion, content: Mapping[str, Any]) -> None:
    """The type checks on new power levels content (rules 9.1-9.3 of room 10)."""
    if room_version.enforce_int_power_levels:
        for key in _TOP_LEVEL_KEYS:
            if key in content and type(content[key]) is not int:
                raise AuthError("power_levels.not_integer", f"{key!r} must be an integer")
        for key in ("events", "notifications"):
            if key in content:
                value = content[key]
                if not isinstance(value, Mapping) or any(
                    type(v) is not int for v in value.values()
                ):
                    raise AuthError(
                        "power_levels.invalid_map",
                        f"{key!r} must be an object whose values are integers",
                    )
    if "users" in content:
        users = content["users"]
        if not isinstance(users, Mapping):
            raise AuthError("power_levels.invalid_users", "'users' must be an object")
        for user_id, value in users.items():
            if not is_valid_user_id(user_id):
                raise AuthError("power_levels.invalid_users", f"{user_id!r} is not a valid user id")
            if parse_level(room_version, value) is None:
                raise AuthError(
                    "power_levels.invalid_users", f"level of {user_id!r} is not an integer"
                )


def check_power_levels_event(
    room_version: RoomVersion, event: Event, auth_events: AuthEvents
) -> None:
    """The rules specific to `m.room.power_levels` events (rule 10 of room 12).

    A sender may only touch levels at or below their own, may not give anyone
    more than their own level, and may not change the level of another user
    whose level is at least theirs (their own entry excepted).
    """
    content = event.content
    _check_shape(room_version, content)
    users = _as_mapping(content.get("users"))
    if room_version.privileged_creators and users:
        create = auth_events.get(CREATE_KEY)
        if create is not None:
            listed = sorted(_creators(create).intersection(users))
            if listed:
                raise AuthError(
                    "power_levels.creator_in_users",
                    f"room creators cannot be given a power level: {', '.join(listed)}",
                )

    current = auth_events.get(POWER_LEVELS_KEY)
    if current is None:
        return
    old_content = current.content
    sender_level = get_power_level(room_version, event.sender, auth_events)

    def check(what: str, old: int | None, new: int | None) -> None:
        if old is not None and old > sender_level:
            raise AuthError(
                "power_levels.change_above_own",
                f"cannot change {what} from {old}, above the sender's level {sender_level}",
            )
        if new is not None and new > sender_level:
            raise AuthError(
                "power_levels.raise_above_own",
                f"cannot set {what} to {new}, above the sender's level {sender_level}",
            )

    for key in _TOP_LEVEL_KEYS:
        old = parse_level(room_version, old_content[key]) if key in old_content else None
        new = parse_level(room_version, content[key]) if key in content else None
        if old != new:
            check(repr(key), old, new)

    maps = (
        ("events", "notifications")
        if room_version.limit_notifications_power_levels
        else ("events",)
    )
    for name in maps:
        old_map = _as_mapping(old_content.get(name))
        new_map = _as_mapping(content.get(name))
        for key, old, new in _changes(room_version, old_map, new_map):
            check(f"{name}[{key!r}]", old, new)

    for user_id, old, new in _changes(room_version, _as_mapping(old_content.get("users")), users):
        if user_id != event.sender and old is not None and old >= sender_level:
            raise AuthError(
                "power_levels.change_peer_or_superior",
                f"cannot change the level of {user_id} ({old}): not below the sender's "
                f"level {sender_level}",
            )
        check(f"the level of {user_id}", old, new)
