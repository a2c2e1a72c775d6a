"""State resolution: the state of a room where its DAG forks and merges.

`resolve_state` is the one way in. It is pure and synchronous: the caller
loads the events (and, if it has an index, the auth chains) first and passes
synchronous lookups over them. The algorithm follows the room version: v1 for
room 1, v2 for rooms 2 to 11, v2.1 for room 12.
"""

from __future__ import annotations

from collections.abc import Sequence

from homeserver.events.event import StateKey
from homeserver.events.room_versions import RoomVersion, StateResolution
from homeserver.events.state_res.common import (
    EventGraph,
    GetAuthChain,
    GetEvent,
    IsRejected,
    StateMap,
)
from homeserver.events.state_res.v1 import resolve_v1
from homeserver.events.state_res.v2 import resolve_v2

__all__ = ["StateMap", "resolve_state"]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    get_event: GetEvent,
    get_auth_chain: GetAuthChain | None = None,
    *,
    is_rejected: IsRejected | None = None,
) -> dict[StateKey, str]:
    """Resolve several state maps ((type, state_key) -> event id) into one.

    `get_event` returns an already-loaded event or None; events it does not
    know are left out of the resolution (their ids still count when comparing
    auth chains). `get_auth_chain`, if given, returns the union of the auth
    chains of the given events, as the spec defines them: every event
    reachable through `auth_events` links, but not the given events
    themselves unless one is reachable from another (in room 12, with the
    create event the room id implies). Without it the chains
    are walked through `get_event` and memoised for this call. `is_rejected` tells which events were
    rejected, so that rejected auth events are not used by the v2 iterative
    auth checks.
    """
    if not state_sets:
        return {}
    if len(state_sets) == 1:
        return dict(state_sets[0])
    graph = EventGraph(get_event, get_auth_chain)
    if room_version.state_res is StateResolution.V1:
        return resolve_v1(room_version, state_sets, graph)
    return resolve_v2(room_version, state_sets, graph, is_rejected)
