"""The table of room versions: every per-version difference the engine knows.

Code elsewhere asks a `RoomVersion` for a named rule instead of comparing
version strings, so that adding a version is one row here.
"""

from __future__ import annotations

import enum

import attrs


class EventFormat(enum.Enum):
    """How an event's id is obtained."""

    V1 = 1  # event_id is a field of the event, "$local:server" (rooms 1, 2)
    V2 = 2  # event_id is the reference hash, standard unpadded base64 (room 3)
    V3 = 3  # event_id is the reference hash, URL-safe unpadded base64 (rooms 4+)


class StateResolution(enum.Enum):
    V1 = 1  # room 1
    V2 = 2  # rooms 2 to 11
    V2_1 = 3  # room 12: empty start state and the full conflicted subgraph


@attrs.frozen
class RoomVersion:
    identifier: str
    event_format: EventFormat
    state_res: StateResolution
    stable: bool = True
    # v1-v5: m.room.aliases is authorised specially (sender's domain = state_key).
    special_case_aliases_auth: bool = False
    # v6+: integers must be in [-2**53+1, 2**53-1]; floats rejected; strict canonical JSON.
    strict_canonicaljson: bool = False
    # v6+: the "notifications" key of power levels counts in power level changes.
    limit_notifications_power_levels: bool = False
    # v5+: enforce server key validity periods when checking signatures.
    enforce_key_validity: bool = False
    # v7+: the knock join rule and membership.
    knock_join_rule: bool = False
    # v8+: the restricted join rule (join_authorised_via_users_server).
    restricted_join_rule: bool = False
    # v9+: redaction keeps content.join_authorised_via_users_server of members.
    restricted_join_rule_fix: bool = False
    # v10+: the knock_restricted join rule.
    knock_restricted_join_rule: bool = False
    # v10+: power level values must be real integers, not strings of digits.
    enforce_int_power_levels: bool = False
    # v11+: redaction algorithm updates (MSC2176/MSC3821/MSC3989).
    updated_redaction_rules: bool = False
    # v11+: no "creator" in m.room.create content; the sender is the creator.
    implicit_room_creator: bool = False
    # v12+: room id is derived from the create event; creators have infinite
    # power; additional_creators; the create event is not listed in auth_events.
    room_id_from_create_event: bool = False
    privileged_creators: bool = False

    @property
    def url_safe_event_ids(self) -> bool:
        return self.event_format is EventFormat.V3

    @property
    def hash_event_ids(self) -> bool:
        return self.event_format is not EventFormat.V1


_V1 = RoomVersion(
    "1",
    EventFormat.V1,
    StateResolution.V1,
    special_case_aliases_auth=True,
)
_V2 = attrs.evolve(_V1, identifier="2", state_res=StateResolution.V2)
_V3 = attrs.evolve(_V2, identifier="3", event_format=EventFormat.V2)
_V4 = attrs.evolve(_V3, identifier="4", event_format=EventFormat.V3)
_V5 = attrs.evolve(_V4, identifier="5", enforce_key_validity=True)
_V6 = attrs.evolve(
    _V5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonicaljson=True,
    limit_notifications_power_levels=True,
)
_V7 = attrs.evolve(_V6, identifier="7", knock_join_rule=True)
_V8 = attrs.evolve(_V7, identifier="8", restricted_join_rule=True)
_V9 = attrs.evolve(_V8, identifier="9", restricted_join_rule_fix=True)
_V10 = attrs.evolve(
    _V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True
)
_V11 = attrs.evolve(_V10, identifier="11", updated_redaction_rules=True, implicit_room_creator=True)
_V12 = attrs.evolve(
    _V11,
    identifier="12",
    state_res=StateResolution.V2_1,
    room_id_from_create_event=True,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12)
}

DEFAULT_ROOM_VERSION = "12"
