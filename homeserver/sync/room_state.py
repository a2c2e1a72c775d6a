"""The `state` of a room in /sync, and its `summary`: pure functions over state maps.

The spec's rule: `state` holds the state at the start of the timeline that
the client has not seen yet, so that the client, applying `state` and then
the timeline's state events, ends with the state at the end of the timeline.

- Full state (initial sync, full_state, a room the user just joined): the
  state at the start of the timeline, plus, as Synapse does, the state at
  the end of the range where it differs and the timeline does not show it
  (events the timeline filter or history visibility left out).
- Incremental: what changed between `since` and the start of the timeline.
  Only state keys with a state event in the range can have changed, so only
  those are compared (a big room's membership is never loaded whole). When
  the timeline holds every event of the range there is nothing to add.
- `state_after` (MSC4222, asked for with `use_state_after`): the state at
  the END of the timeline instead, timeline events included, so that a
  client never has to apply the timeline's state events (which may have lost
  state resolution) itself. Full: the whole state at the end of the range.
  Incremental: each state key with a state event in the range whose value at
  the end differs from its value at `since`, whether or not the timeline is
  limited. With lazy loading, the member events of every timeline sender at
  the end of the range.
- Lazy loading of members: member events only of the timeline's senders
  (and of the user, on a full state sync). Those a device was already sent
  are then left out by rooms.py (sent_members.py), unless the filter asks
  for `include_redundant_members`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from storage.events import StoredEvent
from storage.state import StateKey, StateMap
from storage.sync import MemberCounts

MEMBER = "m.room.member"


def state_before(first: StoredEvent, after: StateMap) -> StateMap:
    """The state before `first`, from `after`, the state after it."""
    event = first.event
    if event.state_key is None:
        return after
    before = dict(after)
    key = (event.type, event.state_key)
    if first.replaces_state is not None:
        before[key] = first.replaces_state
    else:
        before.pop(key, None)
    return before


def lazy_members(timeline: Sequence[StoredEvent]) -> set[str]:
    """The senders whose member event the client needs to show the timeline:
    all of them, except those whose member event the timeline shows before
    their first event."""
    seen: set[StateKey] = set()
    senders: set[str] = set()
    for stored in timeline:
        event = stored.event
        if (MEMBER, event.sender) not in seen:
            senders.add(event.sender)
        if event.state_key is not None:
            seen.add((event.type, event.state_key))
    return senders


def _wanted(key: StateKey, lazy: Collection[str] | None) -> bool:
    return lazy is None or key[0] != MEMBER or key[1] in lazy


def full_state_ids(
    start: StateMap,
    end: StateMap | None,
    timeline_ids: Collection[str],
    lazy: Collection[str] | None,
) -> list[str]:
    """The state a client learning the room afresh needs (see the module docstring)."""
    chosen: dict[str, None] = {}
    for key, event_id in start.items():
        if _wanted(key, lazy) and event_id not in timeline_ids:
            chosen[event_id] = None
    for key, event_id in (end or {}).items():
        if start.get(key) != event_id and _wanted(key, lazy) and event_id not in timeline_ids:
            chosen[event_id] = None
    return list(chosen)


def delta_state_ids(
    changed: Iterable[StateKey],
    start: StateMap,
    end: StateMap | None,
    since: StateMap | None,
    timeline_ids: Collection[str],
    lazy: Collection[str] | None,
) -> list[str]:
    """The state that changed between `since` and the start of the timeline
    (None for `since`: nothing did), plus the lazily loaded members."""
    chosen: dict[str, None] = {}
    if since is not None:
        for key in changed:
            for event_id in (start.get(key), (end or {}).get(key)):
                if event_id and event_id != since.get(key) and event_id not in timeline_ids:
                    chosen[event_id] = None
    if lazy is not None:
        for key, event_id in start.items():
            if key[0] == MEMBER and key[1] in lazy and event_id not in timeline_ids:
                chosen[event_id] = None
    return list(chosen)


def state_after_full_ids(end: StateMap, lazy: Collection[str] | None) -> list[str]:
    """`state_after` for a client learning the room afresh: the state at the end."""
    return [event_id for key, event_id in end.items() if _wanted(key, lazy)]


def state_after_delta_ids(
    changed: Iterable[StateKey],
    end: StateMap,
    since: StateMap,
    lazy: Collection[str] | None,
) -> list[str]:
    """`state_after` of an incremental sync: what differs between `since`
    and the end of the range, plus the lazily loaded members at the end."""
    chosen: dict[str, None] = {}
    for key in changed:
        event_id = end.get(key)
        if event_id and event_id != since.get(key):
            chosen[event_id] = None
    for user in lazy or ():
        event_id = end.get((MEMBER, user))
        if event_id:
            chosen[event_id] = None
    return list(chosen)


def timeline_senders(timeline: Sequence[StoredEvent]) -> set[str]:
    """Everyone who sent an event of the timeline: with `state_after` the
    client takes no member event from the timeline itself."""
    return {stored.event.sender for stored in timeline}


def heroes(counts: MemberCounts, user_id: str) -> list[tuple[str, str]]:
    """(user id, member event id) of the room's heroes, as Synapse picks them:
    of the candidates other than the user, the joined and invited ones, or if
    there are none the ones who left or were banned; five at most, by user id."""
    others = [(u, m, e) for u, m, e in counts.hero_candidates if u != user_id]
    present = [(u, e) for u, m, e in others if m in ("join", "invite")]
    return sorted(present or [(u, e) for u, _m, e in others])[:5]


def summary(counts: MemberCounts, hero_ids: Sequence[str] | None) -> dict[str, Any]:
    """The room summary; `hero_ids` None for rooms with a name or an alias,
    which clients name by those instead."""
    result: dict[str, Any] = {
        "m.joined_member_count": counts.joined,
        "m.invited_member_count": counts.invited,
    }
    if hero_ids is not None:
        result["m.heroes"] = list(hero_ids)
    return result
