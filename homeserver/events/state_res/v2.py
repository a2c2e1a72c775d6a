"""State resolution v2 (rooms 2 to 11) and v2.1 (room 12).

The steps follow the spec's algorithm section (rooms/v2 and rooms/v12):

1. split the state sets into the unconflicted state map and the conflicted
   state set, and build the full conflicted set from the conflicted state set,
   the auth difference and, in v2.1, the conflicted state subgraph;
2. sort the power events of the full conflicted set, with the conflicted
   events of their auth chains, into reverse topological power ordering;
3. apply the iterative auth checks to them, starting from the unconflicted
   state map (v2) or from an empty state map (v2.1);
4. order the remaining events by mainline ordering based on the resulting
   power levels event, and apply the iterative auth checks to them;
5. put the unconflicted state map back on top.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence

from homeserver.events.auth import check_auth, get_power_level
from homeserver.events.errors import AuthError
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion, StateResolution
from homeserver.events.state_res.common import (
    POWER_LEVELS_KEY,
    EventGraph,
    IsRejected,
    StateMap,
    auth_keys_for_event,
    is_power_event,
    postorder,
)


def resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    graph: EventGraph,
    is_rejected: IsRejected | None = None,
) -> dict[StateKey, str]:
    """Resolve `state_sets` with state resolution v2 or v2.1 (per room_version)."""
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return unconflicted
    conflicted_ids: set[str] = set().union(*conflicted.values())

    full_conflicted = conflicted_ids | auth_difference(state_sets, unconflicted, conflicted, graph)
    if room_version.state_res is StateResolution.V2_1:
        full_conflicted |= conflicted_state_subgraph(conflicted_ids, graph)
    events = {
        event_id: event
        for event_id in full_conflicted
        if (event := graph.event(event_id)) is not None and event.state_key is not None
    }

    power_ids = [event_id for event_id, event in events.items() if is_power_event(event)]
    power_set = set(power_ids)
    power_set.update(graph.auth_chain(power_ids).intersection(events))
    power_sorted = reverse_topological_power_order(room_version, power_set, graph)

    base = {} if room_version.state_res is StateResolution.V2_1 else unconflicted
    state = iterative_auth_checks(room_version, base, power_sorted, graph, is_rejected)

    remaining = [event for event_id, event in events.items() if event_id not in power_set]
    remaining_sorted = mainline_order(remaining, state.get(POWER_LEVELS_KEY), graph)
    state = iterative_auth_checks(room_version, state, remaining_sorted, graph, is_rejected)

    state.update(unconflicted)
    return state


def separate(
    state_sets: Sequence[StateMap],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The unconflicted state map and the conflicted state set, by key.

    A key is unconflicted only when every state set has it with the same event:
    a key missing from some set is conflicted, with the events the other sets
    have for it.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    first, *others = state_sets
    for key, event_id in first.items():
        if all(other.get(key) == event_id for other in others):
            unconflicted[key] = event_id
    for state_set in state_sets:
        for key, event_id in state_set.items():
            if key not in unconflicted:
                conflicted.setdefault(key, set()).add(event_id)
    return unconflicted, conflicted


def auth_difference(
    state_sets: Sequence[StateMap],
    unconflicted: StateMap,
    conflicted: dict[StateKey, set[str]],
    graph: EventGraph,
) -> set[str]:
    """Events in the full auth chain of some state sets but not of all of them.

    Every state set contains the unconflicted events, so their auth chain is
    part of every full auth chain and can never be in the difference. It is
    walked once; each set's conflicted events are then walked only down to it.
    That turns a union and intersection over rooms of thousands of members
    into a walk over the few events near the forks.
    """
    shared = graph.auth_chain(set(unconflicted.values()))
    chains = [
        graph.auth_chain([event_id for key, event_id in s.items() if key in conflicted], shared)
        for s in state_sets
    ]
    return set().union(*chains).difference(chains[0].intersection(*chains[1:]))


def conflicted_state_subgraph(conflicted_ids: set[str], graph: EventGraph) -> set[str]:
    """v2.1: every event on an auth path between two conflicted events.

    An event is on such a path when it is in the auth chain of a conflicted
    event and a conflicted event is in its own auth chain. The second part is
    computed for the whole auth chain of the conflicted events in one pass,
    children before parents.
    """
    ancestors = graph.auth_chain(conflicted_ids)
    reaches_conflicted: dict[str, bool] = {}
    for event_id in postorder(ancestors, graph.auth_ids):
        reaches_conflicted[event_id] = any(
            auth_id in conflicted_ids or reaches_conflicted.get(auth_id, False)
            for auth_id in graph.auth_ids(event_id)
        )
    return {event_id for event_id in ancestors if reaches_conflicted[event_id]} | conflicted_ids


def reverse_topological_power_order(
    room_version: RoomVersion, event_ids: set[str], graph: EventGraph
) -> list[Event]:
    """Sort `event_ids` by the spec's reverse topological power ordering.

    This is Kahn's algorithm over the auth DAG restricted to `event_ids`,
    taking at each step the ready event whose sender has the greatest power
    level (from the event's own auth events), then the smallest
    origin_server_ts, then the smallest event id. An event is ready once every
    member of `event_ids` in its auth chain has been taken; auth paths that
    leave the set and come back still count, so the order always respects the
    auth chain.
    """
    parents = _nearest_members_below(event_ids, graph)
    waiting_on = {event_id: len(below) for event_id, below in parents.items()}
    dependants: dict[str, list[str]] = {event_id: [] for event_id in event_ids}
    for event_id, below in parents.items():
        for parent in below:
            dependants[parent].append(event_id)

    def sort_key(event_id: str) -> tuple[float, int, str]:
        event = graph.event(event_id)
        assert event is not None
        return (-sender_power_level(room_version, event, graph), event.origin_server_ts, event_id)

    ready = [sort_key(event_id) for event_id, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Event] = []
    while ready:
        event_id = heapq.heappop(ready)[2]
        event = graph.event(event_id)
        assert event is not None
        ordered.append(event)
        for dependant in dependants[event_id]:
            waiting_on[dependant] -= 1
            if waiting_on[dependant] == 0:
                heapq.heappush(ready, sort_key(dependant))
    return ordered


def _nearest_members_below(members: set[str], graph: EventGraph) -> dict[str, set[str]]:
    """For each member, the members reachable through auth paths avoiding members.

    Those are the edges of the auth DAG restricted to `members` (with paths
    through outside events contracted), enough for a topological sort. The
    answer for each outside event is memoised, so shared history is walked
    once however many members sit on top of it.
    """
    below: dict[str, frozenset[str]] = {}
    empty: frozenset[str] = frozenset()

    def step(auth_ids: Iterable[str]) -> frozenset[str]:
        found: set[str] = set()
        for auth_id in auth_ids:
            if auth_id in members:
                found.add(auth_id)
            else:  # not yet known only on a forged auth cycle
                found.update(below.get(auth_id, empty))
        return frozenset(found) if found else empty

    def outside_children(event_id: str) -> Iterable[str]:
        return [a for a in graph.auth_ids(event_id) if a not in members]

    outside_starts = [
        auth_id
        for event_id in members
        for auth_id in graph.auth_ids(event_id)
        if auth_id not in members
    ]
    for event_id in postorder(outside_starts, outside_children):
        below[event_id] = step(graph.auth_ids(event_id))
    return {event_id: set(step(graph.auth_ids(event_id))) for event_id in members}


def sender_power_level(room_version: RoomVersion, event: Event, graph: EventGraph) -> float:
    """The sender's power level according to the event's own auth events.

    Room creators in room version 12 have infinite power, hence a float.
    """
    auth_events = graph.auth_events_by_key(event)
    return get_power_level(room_version, event.sender, auth_events)


def iterative_auth_checks(
    room_version: RoomVersion,
    base: StateMap,
    events: Iterable[Event],
    graph: EventGraph,
    is_rejected: IsRejected | None = None,
) -> dict[StateKey, str]:
    """Apply each event in turn to a copy of `base` if the auth rules allow it.

    Each auth key the rules need comes from the state built so far; a key the
    state lacks comes from the event's own auth events, unless that auth event
    was rejected. An event that fails the rules is ignored.
    """
    state = dict(base)
    for event in events:
        own: dict[StateKey, Event] | None = None
        auth_events: dict[StateKey, Event] = {}
        for key in auth_keys_for_event(room_version, event):
            state_id = state.get(key)
            auth_event = graph.event(state_id) if state_id is not None else None
            if auth_event is None:
                if own is None:
                    own = graph.auth_events_by_key(event, is_rejected)
                auth_event = own.get(key)
            if auth_event is not None:
                auth_events[key] = auth_event
        try:
            check_auth(room_version, event, auth_events)
        except AuthError:
            continue
        state[event.state_tuple] = event.event_id
    return state


def mainline_order(
    events: Sequence[Event], power_levels_id: str | None, graph: EventGraph
) -> list[Event]:
    """Sort `events` by the mainline ordering based on `power_levels_id`.

    An event's mainline position is the index in the mainline of the first
    power levels event met by following power levels auth events from it
    (infinity if none is on the mainline). Events with the greatest position
    (based on the oldest power levels) come first, then by origin_server_ts,
    then by event id. Positions of every power levels event walked are
    memoised, so long power levels histories are walked once.
    """
    if not events:
        return []
    position: dict[str | None, float] = {None: math.inf}
    index = 0
    current = power_levels_id
    while current is not None and current not in position:
        position[current] = index
        index += 1
        current = graph.power_levels_parent(current)

    def closest(power_levels: str | None) -> float:
        path: list[str] = []
        on_path: set[str] = set()
        while power_levels not in position:
            assert power_levels is not None
            if power_levels in on_path:  # a forged cycle never reaches the mainline
                position[power_levels] = math.inf
                break
            path.append(power_levels)
            on_path.add(power_levels)
            power_levels = graph.power_levels_parent(power_levels)
        found = position[power_levels]
        for walked in path:
            position[walked] = found
        return found

    def sort_key(event: Event) -> tuple[float, int, str]:
        return (
            -closest(graph.power_levels_parent(event.event_id)),
            event.origin_server_ts,
            event.event_id,
        )

    return sorted(events, key=sort_key)
