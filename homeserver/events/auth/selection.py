"""Auth events selection: which state an event's `auth_events` may reference.

Used three ways: the event builder picks auth events with it, the receiving
pipeline checks incoming `auth_events` against it (rule "considering the
event's auth events"), and state resolution uses it to know which state keys
an event's authorisation depends on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from homeserver.events.auth._common import (
    CREATE,
    CREATE_KEY,
    INVITE,
    JOIN,
    JOIN_RULES_KEY,
    KNOCK,
    MEMBER,
    POWER_LEVELS_KEY,
    THIRD_PARTY_INVITE,
)
from homeserver.events.errors import AuthError
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion

_JOIN_RULES_MEMBERSHIPS = frozenset((JOIN, INVITE, KNOCK))


def auth_types_for_event(
    room_version: RoomVersion, event: Event | Mapping[str, Any]
) -> set[StateKey]:
    """The (type, state_key) pairs the event's `auth_events` should reference.

    `event` is an `Event` or a mapping with the PDU fields "type", "sender",
    "state_key" and "content" (an event still being built). The create event
    is selected up to room 11 and never from room 12, where the room id stands
    for it. A create event has no auth events at all.
    """
    if isinstance(event, Event):
        event_type, sender, state_key, content = (
            event.type,
            event.sender,
            event.state_key,
            event.content,
        )
    else:
        event_type = event.get("type")
        sender = event.get("sender")
        state_key = event.get("state_key")
        content = event.get("content") or {}
    if event_type == CREATE:
        return set()

    wanted: set[StateKey] = {POWER_LEVELS_KEY, (MEMBER, sender)}
    if not room_version.room_id_from_create_event:
        wanted.add(CREATE_KEY)
    if event_type == MEMBER and isinstance(state_key, str):
        wanted.add((MEMBER, state_key))
        membership = content.get("membership")
        if membership in _JOIN_RULES_MEMBERSHIPS:
            wanted.add(JOIN_RULES_KEY)
        if membership == INVITE:
            third_party_invite = content.get("third_party_invite")
            if isinstance(third_party_invite, Mapping):
                signed = third_party_invite.get("signed")
                if isinstance(signed, Mapping):
                    token = signed.get("token")
                    if isinstance(token, str):
                        wanted.add((THIRD_PARTY_INVITE, token))
        elif membership == JOIN and room_version.restricted_join_rule:
            authoriser = content.get("join_authorised_via_users_server")
            if isinstance(authoriser, str):
                wanted.add((MEMBER, authoriser))
    return wanted


def check_auth_events_selection(
    room_version: RoomVersion,
    event: Event,
    auth_events: Iterable[Event],
    create_event: Event | None = None,
) -> dict[StateKey, Event]:
    """Check the rules "considering the event's auth events" and return the
    state map to hand to `check_auth`.

    `auth_events` are the events listed in `event.auth_event_ids`. Rejects
    duplicate (type, state_key) pairs, entries the selection algorithm would
    not pick, entries from another room and, up to room 11, a missing create
    event. Whether an auth event was itself rejected is known only to the
    caller, which must check it. From room 12 the create event is not among
    the auth events: pass it as `create_event` and it is added to the map.

    A create event skips these rules entirely (its rules come first and allow
    or reject it outright), so the map returned for it is empty.
    """
    if event.type == CREATE:
        return {}
    allowed = auth_types_for_event(room_version, event)
    selected: dict[StateKey, Event] = {}
    for auth_event in auth_events:
        if auth_event.state_key is None:
            raise AuthError(
                "auth_events.unexpected", f"auth event {auth_event.event_id} is not a state event"
            )
        key = (auth_event.type, auth_event.state_key)
        if key in selected:
            raise AuthError("auth_events.duplicate", f"two auth events for {key}")
        if key not in allowed:
            raise AuthError("auth_events.unexpected", f"{key} is not an auth event of this event")
        if auth_event.room_id != event.room_id:
            raise AuthError(
                "auth_events.wrong_room",
                f"auth event {auth_event.event_id} belongs to room {auth_event.room_id}",
            )
        selected[key] = auth_event
    if room_version.room_id_from_create_event:
        if create_event is not None:
            selected[CREATE_KEY] = create_event
    elif CREATE_KEY not in selected:
        raise AuthError("auth_events.no_create", "the auth events have no m.room.create event")
    return selected
