"""Power levels: parsing values per room version, reading levels from state,
and the rules for m.room.power_levels events.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from homeserver.events.auth import (
    get_named_level,
    get_power_level,
    get_required_level,
    parse_level,
)
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.events.test_auth_support import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    DAVE,
    Room,
    versions,
)

# --- parse_level ---------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("value", [0, 50, -10, 2**53 - 1])
def test_parse_integers(version: str, value: int) -> None:
    assert parse_level(KNOWN_ROOM_VERSIONS[version], value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("100", 100), ("000100", 100), ("+100", 100), ("-100", -100), (" 100 ", 100), ("\t-7\n", -7)],
)
def test_stringy_levels_before_v10(value: str, expected: int) -> None:
    for version in versions(1, 9):
        assert parse_level(KNOWN_ROOM_VERSIONS[version], value) == expected
    for version in versions(10, 12):
        assert parse_level(KNOWN_ROOM_VERSIONS[version], value) is None


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("value", ["1.5", "1e3", "", " ", "+-1", "1_000", "١٢", "0x10", "ten"])
def test_malformed_strings_never_levels(version: str, value: str) -> None:
    assert parse_level(KNOWN_ROOM_VERSIONS[version], value) is None


@pytest.mark.parametrize(("value", "expected"), [(50.57, 50), (5.114698e4, 51146), (-1.9, -1)])
def test_floats_truncated_before_v6(value: float, expected: int) -> None:
    for version in versions(1, 5):
        assert parse_level(KNOWN_ROOM_VERSIONS[version], value) == expected
    for version in versions(6, 12):
        assert parse_level(KNOWN_ROOM_VERSIONS[version], value) is None


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, True, False, None, [1], {}])
def test_non_numbers_never_levels(version: str, value: object) -> None:
    assert parse_level(KNOWN_ROOM_VERSIONS[version], value) is None


# --- reading levels ------------------------------------------------------------


@pytest.mark.parametrize("version", versions(1, 10))
def test_without_power_levels_content_creator_has_100_before_v11(version: str) -> None:
    room = Room(version, create_content={"creator": BOB})
    rv = room.rv
    assert get_power_level(rv, BOB, room.state) == 100
    assert get_power_level(rv, ALICE, room.state) == 0


def test_without_power_levels_create_sender_has_100_in_v11() -> None:
    room = Room("11", create_content={"creator": BOB})
    assert get_power_level(room.rv, ALICE, room.state) == 100
    assert get_power_level(room.rv, BOB, room.state) == 0


def test_v12_creators_have_infinite_power() -> None:
    room = Room("12", create_content={"additional_creators": [BOB]})
    assert get_power_level(room.rv, ALICE, room.state) == math.inf
    assert get_power_level(room.rv, BOB, room.state) == math.inf
    assert get_power_level(room.rv, CAROL, room.state) == 0
    room.send("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    room.send("m.room.power_levels", ALICE, {"users_default": 5}, state_key="")
    assert get_power_level(room.rv, BOB, room.state) == math.inf
    assert get_power_level(room.rv, CAROL, room.state) == 5


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_levels_from_power_levels_event(version: str) -> None:
    room = Room.standard(version, power_levels={"users_default": 3})
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], BOB: 42}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    assert get_power_level(room.rv, BOB, room.state) == 42
    assert get_power_level(room.rv, CAROL, room.state) == 3
    expected_alice = math.inf if room.rv.privileged_creators else 100
    assert get_power_level(room.rv, ALICE, room.state) == expected_alice


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_named_and_required_level_defaults(version: str) -> None:
    rv = KNOWN_ROOM_VERSIONS[version]
    for state in ({}, Room.standard(version).state):
        assert get_named_level(rv, "ban", state) == 50
        assert get_named_level(rv, "kick", state) == 50
        assert get_named_level(rv, "redact", state) == 50
        assert get_named_level(rv, "invite", state) == 0
        assert get_required_level(rv, "m.room.topic", "", state) == 50
        assert get_required_level(rv, "m.room.message", None, state) == 0


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_required_level_from_events_map(version: str) -> None:
    room = Room.standard(
        version,
        power_levels={
            "events": {"m.room.topic": 10, "m.reaction": 7},
            "state_default": 60,
            "events_default": 20,
        },
    )
    rv = room.rv
    assert get_required_level(rv, "m.room.topic", "", room.state) == 10
    assert get_required_level(rv, "m.reaction", None, room.state) == 7
    assert get_required_level(rv, "m.room.name", "", room.state) == 60
    assert get_required_level(rv, "m.room.message", None, room.state) == 20


@pytest.mark.parametrize("version", versions(1, 9))
def test_stringy_and_invalid_values_read_leniently_before_v10(version: str) -> None:
    room = Room.standard(version)
    room.send(
        "m.room.power_levels",
        ALICE,
        {
            "users": {ALICE: "100", BOB: " 20 "},
            "ban": "30",
            "kick": "lots",
            "events": {"m.room.topic": "15"},
        },
        state_key="",
    )
    rv = room.rv
    assert get_power_level(rv, ALICE, room.state) == 100
    assert get_power_level(rv, BOB, room.state) == 20
    assert get_named_level(rv, "ban", room.state) == 30
    assert get_named_level(rv, "kick", room.state) == 50  # unreadable: the default
    assert get_required_level(rv, "m.room.topic", "", room.state) == 15


# --- validating new power levels events ---------------------------------------


def _pl(room: Room, sender: str = ALICE, **content: Any) -> Any:
    return room.event("m.room.power_levels", sender, content, state_key="")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("users", [[], "x", None, 5])
def test_users_must_be_an_object(version: str, users: object) -> None:
    room = Room.standard(version)
    room.denied(_pl(room, users=users), "power_levels.invalid_users")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("user_id", ["bob", "@bob", "#bob:b.example", "@bob:", "@bob:b_example"])
def test_users_keys_must_be_user_ids(version: str, user_id: str) -> None:
    room = Room.standard(version)
    room.denied(_pl(room, users={user_id: 0}), "power_levels.invalid_users")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_historical_user_ids_accepted(version: str) -> None:
    room = Room.standard(version)
    room.check(_pl(room, users={"@Old Style!:b.example:8448": 0, "@x:[::1]": 0, "@y:1.2.3.4": 1}))


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("value", ["abc", "1.5", None, True, [50]])
def test_users_values_must_be_integers(version: str, value: object) -> None:
    room = Room.standard(version)
    room.denied(_pl(room, users={BOB: value}), "power_levels.invalid_users")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_stringy_user_levels_only_before_v10(version: str) -> None:
    room = Room.standard(version)
    event = _pl(room, users={BOB: "50"})
    if room.rv.enforce_int_power_levels:
        room.denied(event, "power_levels.invalid_users")
    else:
        room.check(event)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_float_user_levels_only_before_v6(version: str) -> None:
    room = Room.standard(version)
    event = _pl(room, users={BOB: 50.5})
    if room.rv.strict_canonicaljson:
        room.denied(event, "power_levels.invalid_users")
    else:
        room.check(event)


@pytest.mark.parametrize(
    "key", ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"]
)
@pytest.mark.parametrize("value", ["50", None, 50.0, True])
def test_top_level_values_must_be_integers_from_v10(key: str, value: object) -> None:
    for version in versions(10, 12):
        room = Room.standard(version)
        room.denied(_pl(room, **{key: value}), "power_levels.not_integer")
    for version in versions(1, 9):
        room = Room.standard(version)
        room.check(_pl(room, **{key: value}))


@pytest.mark.parametrize("key", ["events", "notifications"])
@pytest.mark.parametrize("value", [{"x": "50"}, {"x": None}, {"x": False}, [], "x", None])
def test_events_and_notifications_must_map_to_integers_from_v10(key: str, value: object) -> None:
    for version in versions(10, 12):
        room = Room.standard(version)
        room.denied(_pl(room, **{key: value}), "power_levels.invalid_map")
    for version in versions(6, 9):
        room = Room.standard(version)
        room.check(_pl(room, **{key: value}))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_first_power_levels_event_allowed_whatever_its_values(version: str) -> None:
    room = Room(version)
    room.send("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    room.check(_pl(room, users={BOB: 1000}, ban=1000, events={"m.room.topic": 1000}))


def test_v12_creators_must_not_be_listed_in_users() -> None:
    room = Room.standard("12", create_content={"additional_creators": [BOB]})
    room.denied(_pl(room, users={ALICE: 100}), "power_levels.creator_in_users")
    room.denied(_pl(room, users={BOB: 0}), "power_levels.creator_in_users")
    room.check(_pl(room, users={CAROL: 100}))
    # The first power levels event is held to the same rule.
    fresh = Room("12")
    fresh.send("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    fresh.denied(_pl(fresh, users={ALICE: 100}), "power_levels.creator_in_users")


@pytest.mark.parametrize("version", versions(1, 11))
def test_creator_may_be_listed_in_users_before_v12(version: str) -> None:
    room = Room.standard(version)
    room.check(_pl(room, users={ALICE: 100}))


# --- changing power levels ------------------------------------------------------


def _moderated(version: str, **levels: Any) -> Room:
    """ALICE is the owner (100; a creator in room 12), BOB a moderator at 50,
    CAROL and DAVE members at 50 and 10.
    """
    users: dict[str, Any] = {BOB: 50, CAROL: 50, DAVE: 10}
    room = Room.standard(version, power_levels={"users": users, **levels})
    if not room.rv.privileged_creators:
        levels_content = room.state[("m.room.power_levels", "")].content
        assert levels_content["users"][ALICE] == 100
    for user in (BOB, CAROL, DAVE):
        room.set_member(user, "join")
    return room


def _edit(room: Room, sender: str, **changes: Any) -> Any:
    """A power levels event from `sender`: the current content with `changes`."""
    content = {**room.state[("m.room.power_levels", "")].content, **changes}
    return room.event("m.room.power_levels", sender, content, state_key="")


def _users(room: Room, **changes: Any) -> dict[str, Any]:
    users = dict(room.state[("m.room.power_levels", "")].content["users"])
    users.update({_NAMES[k]: v for k, v in changes.items()})
    return {k: v for k, v in users.items() if v is not None}


_NAMES = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": DAVE}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_power_levels_change_needs_state_level(version: str) -> None:
    room = _moderated(version, events={"m.room.power_levels": 60})
    room.denied(_edit(room, BOB), "event.power")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(
    "key", ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"]
)
def test_top_level_changes(version: str, key: str) -> None:
    # Sending power levels itself stays at 50, whatever state_default becomes.
    events = {"m.room.power_levels": 50}
    room = _moderated(version, events=events, **{key: 40})
    room.check(_edit(room, BOB, **{key: 50}))  # up to own level
    room.check(_edit(room, BOB, **{key: 0}))
    room.denied(_edit(room, BOB, **{key: 51}), "power_levels.raise_above_own")

    room = _moderated(version, events=events, **{key: 60})
    room.denied(_edit(room, BOB, **{key: 10}), "power_levels.change_above_own")
    content = dict(room.state[("m.room.power_levels", "")].content)
    del content[key]
    removal = room.event("m.room.power_levels", BOB, content, state_key="")
    room.denied(removal, "power_levels.change_above_own")
    room.check(_edit(room, BOB, **{key: 60}))  # unchanged: allowed


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_adding_a_top_level_key_compares_new_value(version: str) -> None:
    room = _moderated(version)
    # No "ban" key yet (default 50): adding one above 50 needs more power.
    room.check(_edit(room, BOB, ban=50))
    room.denied(_edit(room, BOB, ban=51), "power_levels.raise_above_own")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_events_entries(version: str) -> None:
    room = _moderated(version, events={"m.room.name": 50, "m.room.tombstone": 100})
    room.check(_edit(room, BOB, events={"m.room.name": 10, "m.room.tombstone": 100}))
    room.check(_edit(room, BOB, events={"m.room.tombstone": 100, "m.room.topic": 50}))
    room.denied(
        _edit(room, BOB, events={"m.room.name": 51, "m.room.tombstone": 100}),
        "power_levels.raise_above_own",
    )
    room.denied(
        _edit(room, BOB, events={"m.room.name": 50, "m.room.topic": 70, "m.room.tombstone": 100}),
        "power_levels.raise_above_own",
    )
    room.denied(
        _edit(room, BOB, events={"m.room.name": 50, "m.room.tombstone": 50}),
        "power_levels.change_above_own",
    )
    room.denied(_edit(room, BOB, events={"m.room.name": 50}), "power_levels.change_above_own")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_notifications_entries_checked_from_v6(version: str) -> None:
    room = _moderated(version, notifications={"room": 80})
    lower = _edit(room, BOB, notifications={"room": 20})
    higher = _edit(room, DAVE, notifications={"room": 90})
    if room.rv.limit_notifications_power_levels:
        room.denied(lower, "power_levels.change_above_own")
        room.check(_edit(room, ALICE, notifications={"room": 20}))
    else:
        room.check(lower)
    # DAVE (10) cannot send power levels at all.
    room.denied(higher, "event.power")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_user_entries(version: str) -> None:
    room = _moderated(version)
    room.check(_edit(room, BOB, users=_users(room, dave=50)))  # raise up to own level
    room.check(_edit(room, BOB, users=_users(room, dave=None)))  # remove a lower user
    room.check(_edit(room, BOB, users=_users(room, bob=20)))  # demote oneself
    room.check(_edit(room, BOB, users={**_users(room), "@new:x.example": 50}))
    room.denied(_edit(room, BOB, users=_users(room, dave=51)), "power_levels.raise_above_own")
    room.denied(_edit(room, BOB, users=_users(room, bob=60)), "power_levels.raise_above_own")
    room.denied(
        _edit(room, BOB, users={**_users(room), "@new:x.example": 51}),
        "power_levels.raise_above_own",
    )
    # CAROL is at BOB's level: he can neither demote nor remove her.
    room.denied(
        _edit(room, BOB, users=_users(room, carol=0)), "power_levels.change_peer_or_superior"
    )
    room.denied(
        _edit(room, BOB, users=_users(room, carol=None)), "power_levels.change_peer_or_superior"
    )


@pytest.mark.parametrize("version", versions(1, 11))
def test_cannot_change_a_superior_user(version: str) -> None:
    room = _moderated(version)
    room.denied(
        _edit(room, BOB, users=_users(room, alice=50)), "power_levels.change_peer_or_superior"
    )
    room.check(_edit(room, ALICE, users=_users(room, carol=0, bob=99)))


@pytest.mark.parametrize("version", versions(1, 9))
def test_rewriting_a_stringy_level_as_integer_is_no_change(version: str) -> None:
    room = _moderated(version)
    room.apply(_edit(room, ALICE, ban="75"))
    room.check(_edit(room, BOB, ban=75))
    room.denied(_edit(room, BOB, ban=74), "power_levels.change_above_own")


@pytest.mark.parametrize("version", versions(1, 9))
def test_unreadable_old_values_count_as_absent(version: str) -> None:
    room = _moderated(version)
    room.apply(_edit(room, ALICE, kick="lots", events={"m.x": "many"}))
    room.check(_edit(room, BOB, kick=50, events={"m.x": 50}))
    room.denied(_edit(room, BOB, kick=51, events={}), "power_levels.raise_above_own")


def test_v12_creator_changes_anything() -> None:
    room = _moderated("12", ban=1000, events={"m.room.tombstone": 150})
    room.check(_edit(room, ALICE, ban=5, events={}, users={DAVE: 2**53 - 1}))


def test_v12_only_creators_above_top_user_level() -> None:
    room = _moderated("12")
    # BOB at 50 cannot touch CAROL at 50, whereas the creator can.
    room.denied(
        _edit(room, BOB, users=_users(room, carol=0)), "power_levels.change_peer_or_superior"
    )
    room.check(_edit(room, ALICE, users=_users(room, carol=0)))
