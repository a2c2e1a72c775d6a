"""Helpers shared by the state resolution algorithms.

`EventGraph` is the one place that reads events during a resolution: it
memoises lookups, the auth event ids of each event (including the implicit
create event of room version 12) and auth chain walks, so that the algorithms
never fetch or walk the same part of the auth DAG twice. Every walk is
iterative, because auth chains can be thousands of events deep.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

from homeserver.events.auth import auth_types_for_event
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion

StateMap = Mapping[StateKey, str]
GetEvent = Callable[[str], Event | None]
GetAuthChain = Callable[[Iterable[str]], set[str]]
IsRejected = Callable[[str], bool]

CREATE = "m.room.create"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
MEMBER = "m.room.member"

CREATE_KEY: StateKey = (CREATE, "")
POWER_LEVELS_KEY: StateKey = (POWER_LEVELS, "")


def implicit_create_event_id(event: Event) -> str | None:
    """The create event an event depends on without listing it, if any.

    From room version 12 on, the room id is the create event's id with `!`
    in place of `$`, and the create event must not appear in `auth_events`.
    It is still part of every event's auth chain, so state resolution treats
    it as an auth event of every other event.
    """
    if not event.room_version.room_id_from_create_event or event.type == CREATE:
        return None
    if not event.room_id.startswith("!"):
        return None
    return "$" + event.room_id[1:]


def auth_keys_for_event(room_version: RoomVersion, event: Event) -> set[StateKey]:
    """The state keys the authorization rules read for `event`.

    The spec's auth events selection, plus the create event in room 12 and
    later: it is no longer listed in `auth_events` but the rules still read
    it. The iterative auth checks look these keys up in the partially
    resolved state and fall back to the event's own auth events.
    """
    keys = auth_types_for_event(room_version, event)
    if event.type != CREATE:
        keys.add(CREATE_KEY)
    return keys


def is_power_event(event: Event) -> bool:
    """Whether `event` is a power event as state resolution v2 defines it.

    Power events are those that can take an ability away from someone: power
    levels, join rules, and kicks or bans (a leave or ban sent by someone other
    than its target). The spec's definition names the types only, so a power
    levels or join rules event counts whatever its state key.
    """
    if event.state_key is None:
        return False
    if event.type in (POWER_LEVELS, JOIN_RULES):
        return True
    if event.type == MEMBER:
        return (
            event.content.get("membership") in ("leave", "ban") and event.sender != event.state_key
        )
    return False


def postorder(starts: Iterable[str], children: Callable[[str], Iterable[str]]) -> Iterator[str]:
    """Every node reachable from `starts`, each after all of its children.

    An explicit stack keeps this safe on auth chains far deeper than Python's
    recursion limit. Each node is yielded once.
    """
    seen: set[str] = set()
    for start in starts:
        if start in seen:
            continue
        seen.add(start)
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(children(start)))]
        while stack:
            node, pending = stack[-1]
            for child in pending:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(children(child))))
                    break
            else:
                stack.pop()
                yield node


class EventGraph:
    """A memoising view of the auth DAG for one resolution.

    `get_event` is the caller's synchronous lookup over already-loaded events;
    `get_auth_chain`, when given, answers auth chain questions from a
    precomputed index instead of walking `auth_events` here.
    """

    __slots__ = ("_auth_ids", "_events", "_get_auth_chain", "_get_event", "_pl_parent")

    def __init__(self, get_event: GetEvent, get_auth_chain: GetAuthChain | None = None) -> None:
        self._get_event = get_event
        self._get_auth_chain = get_auth_chain
        self._events: dict[str, Event | None] = {}
        self._auth_ids: dict[str, tuple[str, ...]] = {}
        self._pl_parent: dict[str, str | None] = {}

    def event(self, event_id: str) -> Event | None:
        """The event with this id, or None when the caller does not have it."""
        try:
            return self._events[event_id]
        except KeyError:
            event = self._events[event_id] = self._get_event(event_id)
            return event

    def auth_ids(self, event_id: str) -> tuple[str, ...]:
        """The event's auth event ids, with the implicit v12 create event added.

        An unknown event has no known auth events: walks stop there.
        """
        try:
            return self._auth_ids[event_id]
        except KeyError:
            pass
        event = self.event(event_id)
        if event is None:
            ids: tuple[str, ...] = ()
        else:
            ids = event.auth_event_ids
            create_id = implicit_create_event_id(event)
            if create_id is not None and create_id not in ids:
                ids = (*ids, create_id)
        self._auth_ids[event_id] = ids
        return ids

    def auth_events_by_key(
        self, event: Event, is_rejected: IsRejected | None = None
    ) -> dict[StateKey, Event]:
        """The event's known auth events keyed by (type, state_key).

        Rejected auth events are left out when `is_rejected` is given: the spec
        excludes them from the iterative auth checks.
        """
        found: dict[StateKey, Event] = {}
        for auth_id in self.auth_ids(event.event_id):
            auth_event = self.event(auth_id)
            if auth_event is None or auth_event.state_key is None:
                continue
            if is_rejected is not None and is_rejected(auth_id):
                continue
            found[(auth_event.type, auth_event.state_key)] = auth_event
        return found

    def power_levels_parent(self, event_id: str) -> str | None:
        """The id of the power levels event among this event's auth events."""
        try:
            return self._pl_parent[event_id]
        except KeyError:
            pass
        parent = None
        for auth_id in self.auth_ids(event_id):
            auth_event = self.event(auth_id)
            if (
                auth_event is not None
                and auth_event.type == POWER_LEVELS
                and auth_event.state_key == ""
            ):
                parent = auth_id
                break
        self._pl_parent[event_id] = parent
        return parent

    def auth_chain(self, event_ids: Iterable[str], known: Collection[str] = ()) -> set[str]:
        """The union of the auth chains of `event_ids`, minus `known`.

        `known` must be closed under taking auth events (an auth chain, for
        instance): the walk neither reports nor descends into its members,
        which keeps walks over a shared history cheap.
        """
        if self._get_auth_chain is not None:
            chain = self._get_auth_chain(event_ids)
            return chain.difference(known) if known else chain
        chain = set()
        stack = list(event_ids)
        auth_ids = self.auth_ids
        while stack:
            for auth_id in auth_ids(stack.pop()):
                if auth_id not in chain and auth_id not in known:
                    chain.add(auth_id)
                    stack.append(auth_id)
        return chain
