"""State resolution v1 (room version 1).

The resolved state R starts as the union of the state sets without the
conflicting keys (keys that two sets give different events for; a key only
some sets have is not a conflict). Conflicts are then settled in passes:
power levels, join rules, memberships, everything else. For the first three,
each key's events are sorted by ascending depth then descending
sha1(event_id); the first is taken and each following one replaces it while
the auth rules allow it in R, stopping at the first that they do not. For the
other keys, the first event by descending depth then ascending sha1(event_id)
that the auth rules allow in R wins.

Within one pass every key is checked against R as it stood when the pass
began, so the outcome does not depend on the order in which keys are visited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from homeserver.events.auth import check_auth
from homeserver.events.errors import AuthError
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion
from homeserver.events.state_res.common import (
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    EventGraph,
    StateMap,
    auth_keys_for_event,
)

_AUTH_PASSES = (POWER_LEVELS, JOIN_RULES, MEMBER)


def resolve_v1(
    room_version: RoomVersion, state_sets: Sequence[StateMap], graph: EventGraph
) -> dict[StateKey, str]:
    """Resolve `state_sets` with the room version 1 algorithm."""
    resolved, conflicted = _separate(state_sets)
    candidates: dict[StateKey, list[Event]] = {}
    for key, event_ids in conflicted.items():
        events = [event for event_id in event_ids if (event := graph.event(event_id)) is not None]
        if len(events) == 1:
            resolved[key] = events[0].event_id
        elif events:
            candidates[key] = events

    for event_type in _AUTH_PASSES:
        winners = {
            key: _resolve_auth_key(room_version, events, resolved, graph)
            for key, events in candidates.items()
            if key[0] == event_type
        }
        resolved.update(winners)

    winners = {
        key: _resolve_other_key(room_version, events, resolved, graph)
        for key, events in candidates.items()
        if key[0] not in _AUTH_PASSES
    }
    resolved.update(winners)
    return resolved


def _separate(
    state_sets: Sequence[StateMap],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The union of the state sets without conflicting keys, and the conflicts."""
    union: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            seen = union.setdefault(key, event_id)
            if seen != event_id:
                conflicted.setdefault(key, {seen}).add(event_id)
    for key in conflicted:
        del union[key]
    return union, conflicted


def _sha1(event: Event) -> str:
    return hashlib.sha1(event.event_id.encode("utf-8")).hexdigest()


def _allowed(
    room_version: RoomVersion,
    event: Event,
    state: StateMap,
    graph: EventGraph,
    extra: Event | None = None,
) -> bool:
    """Whether the auth rules allow `event` in `state` (with `extra` applied)."""
    auth_events: dict[StateKey, Event] = {}
    for key in auth_keys_for_event(room_version, event):
        if extra is not None and extra.state_tuple == key:
            auth_events[key] = extra
        elif (state_id := state.get(key)) is not None and (
            auth_event := graph.event(state_id)
        ) is not None:
            auth_events[key] = auth_event
    try:
        check_auth(room_version, event, auth_events)
    except AuthError:
        return False
    return True


def _resolve_auth_key(
    room_version: RoomVersion, events: list[Event], state: StateMap, graph: EventGraph
) -> str:
    """Power levels, join rules and membership: the longest allowed run from the oldest."""
    ordered = sorted(sorted(events, key=_sha1, reverse=True), key=lambda event: event.depth)
    chosen = ordered[0]
    for event in ordered[1:]:
        if not _allowed(room_version, event, state, graph, extra=chosen):
            break
        chosen = event
    return chosen.event_id


def _resolve_other_key(
    room_version: RoomVersion, events: list[Event], state: StateMap, graph: EventGraph
) -> str:
    """Any other key: the deepest event the auth rules allow.

    The spec does not say what happens when none is allowed; like Synapse,
    the shallowest candidate is kept then, so that servers agree.
    """
    ordered = sorted(sorted(events, key=_sha1), key=lambda event: event.depth, reverse=True)
    for event in ordered:
        if _allowed(room_version, event, state, graph):
            return event.event_id
    return ordered[-1].event_id
