"""The request as the engine sees it, whichever wire format it came in.

The unstable endpoint (what matrix-rust-sdk, matrix-js-sdk and Synapse speak)
and the stable `/v4/sync` differ only in shape (`ranges` or `range`,
required_state as pairs or include/exclude/lazy_members, `is_invite` or
`is_invited`); homeserver/api/sliding_sync_body.py turns both into these
values, so everything below the API sees one request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import attrs

MEMBER = "m.room.member"


@attrs.frozen
class StatePattern:
    """A (type, state key) pattern; None matches anything."""

    type: str | None
    state_key: str | None

    def matches(self, event_type: str, state_key: str) -> bool:
        return (self.type is None or self.type == event_type) and (
            self.state_key is None or self.state_key == state_key
        )

    def as_json(self) -> list[str | None]:
        return [self.type, self.state_key]


@attrs.frozen
class RequiredState:
    """One rule's required_state: what it includes, minus what it excludes,
    plus (lazy) the member events of the timeline's senders and targets."""

    include: frozenset[StatePattern] = frozenset()
    exclude: frozenset[StatePattern] = frozenset()
    lazy: bool = False

    def wants(self, event_type: str, state_key: str) -> bool:
        return any(p.matches(event_type, state_key) for p in self.include) and not any(
            p.matches(event_type, state_key) for p in self.exclude
        )

    def as_json(self) -> dict[str, object]:
        return {
            "i": sorted((p.as_json() for p in self.include), key=str),
            "e": sorted((p.as_json() for p in self.exclude), key=str),
            "l": self.lazy,
        }


@attrs.frozen
class RoomConfig:
    """What to send of a room: the superset of every rule it matches (MSC4186
    "Combining room configs": the largest timeline, the union of the state)."""

    timeline_limit: int
    required_state: tuple[RequiredState, ...]

    def merge(self, other: RoomConfig) -> RoomConfig:
        rules = self.required_state + tuple(
            r for r in other.required_state if r not in self.required_state
        )
        return RoomConfig(max(self.timeline_limit, other.timeline_limit), rules)

    def wants(self, event_type: str, state_key: str) -> bool:
        return any(r.wants(event_type, state_key) for r in self.required_state)

    @property
    def lazy(self) -> bool:
        return any(r.lazy for r in self.required_state)

    def state_json(self) -> list[dict[str, object]]:
        """A stable form of the required state, remembered per room so a
        later widening can be noticed; made once per config, as every room
        of a list shares it (do not modify it)."""
        return _state_json(self.required_state)


@functools.lru_cache(maxsize=256)
def _state_json(rules: tuple[RequiredState, ...]) -> list[dict[str, object]]:
    return sorted((r.as_json() for r in rules), key=repr)


@attrs.frozen
class ListFilters:
    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    spaces: tuple[str, ...] | None = None
    # None inside: rooms without a type.
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()
    # The unstable format's case-insensitive match on the room's m.room.name
    # (matrix-js-sdk sends it; the stable format dropped it).
    room_name_like: str | None = None


@attrs.frozen
class ListConfig:
    # Inclusive [start, end] ranges; None: the whole list.
    ranges: tuple[tuple[int, int], ...] | None
    room: RoomConfig
    filters: ListFilters


@attrs.frozen
class SlidingSyncRequest:
    conn_id: str
    lists: Mapping[str, ListConfig]
    subscriptions: Mapping[str, RoomConfig]
    # The extensions' own parse of the `extensions` object.
    extensions: object
    pos: str | None
    timeout_ms: int
    set_presence: str


def merged(configs: Iterable[RoomConfig]) -> RoomConfig | None:
    result: RoomConfig | None = None
    for config in configs:
        result = config if result is None else result.merge(config)
    return result
