"""The state of a new event and how it moves the room's current state,
shared by every path that stores events (pipeline.py names them).

Everything reads through the room's writer, inside its transaction: the
state groups before and after the event, state resolution where forward
extremities fork (over stored events and the event being persisted), and
the change to the room's current state when the event becomes an extremity.
"""

from __future__ import annotations

from collections.abc import Sequence

from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion
from homeserver.events.state_res import resolve_state
from storage.events import Extremity, RoomHead, RoomWriter, current_state_ids
from storage.state import StateMap

CREATE_KEY: StateKey = ("m.room.create", "")


def membership(event: Event) -> str | None:
    if event.type != "m.room.member":
        return None
    membership = event.content.get("membership")
    return membership if isinstance(membership, str) else None


async def state_after(
    writer: RoomWriter, event: Event, before_group: int | None, before_ids: StateMap
) -> tuple[int | None, str | None, int]:
    """The state group after an event, the event it replaces in the state,
    and the group's delta chain length: a state event sets its key on top of
    the group before it; any other event stays on that group."""
    if event.state_key is None:
        return before_group, None, 0
    key = event.state_tuple
    group, chain = await writer.add_state_group(before_group, {key: event.event_id})
    return group, before_ids.get(key), chain


async def state_before(
    writer: RoomWriter,
    head: RoomHead,
    prevs: Sequence[Extremity],
    keys: set[StateKey],
    current: StateMap,
) -> tuple[int | None, StateMap]:
    """The state group a new event on the forward extremities `prevs`
    builds on, and the wanted keys of its state.

    One forward extremity: the room's current state (`current`, the wanted
    keys of it) is its state. Several (forks from federation): resolve the
    states after `prevs` (not those of extremities the event leaves out,
    past the spec's limit on prev events), and store the result as a group.
    """
    if len(head.extremities) <= 1:
        group = head.extremities[0].state_group if head.extremities else None
        return group, current
    groups = [x.state_group for x in prevs if x.state_group is not None]
    group, resolved = await resolved_group(writer, head.room_version, groups, [])
    return group, {k: v for k, v in resolved.items() if k in keys}


async def resolved_group(
    writer: RoomWriter,
    room_version: RoomVersion,
    groups: list[int],
    extra: list[StateMap],
) -> tuple[int, StateMap]:
    """A state group for the resolution of the given groups' states and
    other state maps, and its state (one group alone is itself)."""
    unique = list(dict.fromkeys(groups))
    if len(unique) == 1 and not extra:
        return unique[0], await writer.state_of_group(unique[0])
    state_sets = [await writer.state_of_group(g) for g in unique] + extra
    resolved = await resolve(writer, room_version, state_sets)
    base = state_sets[0] if unique else {}
    delta: dict[StateKey, str | None] = {k: v for k, v in resolved.items() if base.get(k) != v} | {
        k: None for k in base if k not in resolved
    }
    group, _ = await writer.add_state_group(unique[0] if unique else None, delta)
    return group, resolved


async def resolve(
    writer: RoomWriter,
    room_version: RoomVersion,
    state_sets: list[StateMap],
    pending: Event | None = None,
) -> StateMap:
    """State resolution over stored events (outliers included) and
    `pending`, the event being persisted, which a state set may hold but
    the database does not yet: an event the resolution cannot see is left
    out of it, and the other branch would win by default.

    The create event is loaded too: from room 12 no event lists it among
    its auth events, yet the auth rules of every event read it.
    """
    if len(state_sets) == 1:
        return dict(state_sets[0])
    conflicted = {
        event_id
        for key in {k for s in state_sets for k in s}
        if len({s.get(key) for s in state_sets}) > 1
        for s in state_sets
        if (event_id := s.get(key)) is not None
    }
    starts = set(conflicted)
    if pending is not None:
        starts.update(pending.auth_event_ids)
    creates = {s[CREATE_KEY] for s in state_sets if CREATE_KEY in s}
    needed = starts | creates | await writer.auth_chain_ids(starts)
    stored = await writer.get_events(needed)
    loaded = {i: s.event for i, s in stored.items()}
    rejected = {i for i, s in stored.items() if s.rejected_reason is not None}
    if pending is not None:
        loaded[pending.event_id] = pending
    return resolve_state(room_version, state_sets, loaded.get, is_rejected=rejected.__contains__)


async def current_state_change(
    writer: RoomWriter,
    head: RoomHead,
    event: Event,
    after_group: int | None,
    after_ids: StateMap | None = None,
    *,
    plain: bool = True,
) -> tuple[dict[StateKey, tuple[str, str | None]], tuple[StateKey, ...]]:
    """How the room's current state changes when `event` joins its forward
    extremities: the changed keys (with memberships) and the removed ones.
    Every path that makes an event a forward extremity (local sends,
    joins through /send_join, events received over /send) comes here.

    The usual case, an event on top of every extremity whose state before
    is theirs (`plain`: not learnt across a gap), changes at most its own
    key. Otherwise the current state is the resolution of the state after
    it (`after_ids`, or that of `after_group`) with the states after the
    extremities it leaves in place.
    """
    prevs = set(event.prev_event_ids)
    remaining = [x for x in head.extremities if x.event_id not in prevs]
    if plain and prevs == {x.event_id for x in head.extremities}:
        if event.state_key is None:
            return {}, ()
        return {event.state_tuple: (event.event_id, membership(event))}, ()
    if after_ids is None:
        after_ids = await writer.state_of_group(after_group) if after_group is not None else {}
    state_sets = [after_ids] + [
        await writer.state_of_group(x.state_group) for x in remaining if x.state_group is not None
    ]
    resolved = await resolve(writer, event.room_version, state_sets, event)
    current = await current_state_ids(writer.conn, writer.room_id)
    changed = {k: v for k, v in resolved.items() if current.get(k) != v}
    members = await writer.get_events(
        i for k, i in changed.items() if k[0] == "m.room.member" and i != event.event_id
    )
    delta = {
        k: (
            i,
            membership(event)
            if i == event.event_id
            else membership(members[i].event)
            if i in members
            else None,
        )
        for k, i in changed.items()
    }
    return delta, tuple(k for k in current if k not in resolved)
