"""Auth rules for events other than create and membership: the sender must be
joined, have the required power level, own any user-id state key, and (rooms
1-2 only) the redact level or the redacted event's server.
"""

from __future__ import annotations

import pytest

from homeserver.events.auth import check_auth
from tests.events.test_auth_support import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    Room,
    versions,
)


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("current", [None, "invite", "leave", "ban", "knock"])
def test_sender_must_be_joined(version: str, current: str | None) -> None:
    room = Room.standard(version)
    if current is not None:
        room.force(room.member(BOB, current))
    room.denied(room.event("m.room.message", BOB, {"body": "hi"}), "sender_not_joined")
    room.denied(room.event("m.room.topic", BOB, {"topic": "t"}, state_key=""), "sender_not_joined")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_joined_member_may_send_messages(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    room.check(room.event("m.room.message", BOB, {"body": "hi"}))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_state_needs_state_default(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    room.denied(room.event("m.room.topic", BOB, {"topic": "t"}, state_key=""), "event.power")
    room.check(room.event("m.room.topic", ALICE, {"topic": "t"}, state_key=""))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_required_level_from_events_and_defaults(version: str) -> None:
    room = Room.standard(
        version,
        power_levels={
            "events": {"m.room.topic": 0, "m.custom": 30},
            "events_default": 10,
            "users": {BOB: 10},
        },
    )
    room.set_member(BOB, "join")
    room.set_member(CAROL, "join")
    room.check(room.event("m.room.topic", CAROL, {"topic": "t"}, state_key=""))
    room.check(room.event("m.room.message", BOB, {"body": "hi"}))
    room.denied(room.event("m.room.message", CAROL, {"body": "hi"}), "event.power")
    room.denied(room.event("m.custom", BOB, {}), "event.power")
    room.denied(room.event("m.custom", BOB, {}, state_key=""), "event.power")


@pytest.mark.parametrize("version", versions(1, 11))
def test_without_power_levels_only_the_creator_sends_state(version: str) -> None:
    room = Room(version)
    room.send("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, state_key="")
    room.set_member(BOB, "join")
    room.check(room.event("m.room.message", BOB, {"body": "hi"}))
    room.denied(room.event("m.room.name", BOB, {"name": "n"}, state_key=""), "event.power")
    room.check(room.event("m.room.name", ALICE, {"name": "n"}, state_key=""))


def test_v12_without_power_levels_creators_send_state() -> None:
    room = Room("12", create_content={"additional_creators": [BOB]})
    room.send("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, state_key="")
    room.set_member(BOB, "join")
    room.set_member(CAROL, "join")
    room.check(room.event("m.room.name", BOB, {"name": "n"}, state_key=""))
    room.denied(room.event("m.room.name", CAROL, {"name": "n"}, state_key=""), "event.power")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_user_id_state_keys_belong_to_that_user(version: str) -> None:
    room = Room.standard(version, power_levels={"state_default": 0})
    room.set_member(BOB, "join")
    room.check(room.event("m.custom", BOB, {}, state_key=BOB))
    room.check(room.event("m.custom", BOB, {}, state_key="bob"))
    room.denied(room.event("m.custom", BOB, {}, state_key=ALICE), "state_key.user_mismatch")
    # Owned state keys (MSC3757) are not part of any stable room version.
    room.denied(
        room.event("m.custom", BOB, {}, state_key=BOB + "_laptop"), "state_key.user_mismatch"
    )
    # Even the room's most powerful user.
    room.denied(room.event("m.custom", ALICE, {}, state_key=BOB), "state_key.user_mismatch")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_redaction_needs_its_event_level(version: str) -> None:
    room = Room.standard(version, power_levels={"events": {"m.room.redaction": 20}})
    room.set_member(BOB, "join")
    redaction = room.event("m.room.redaction", BOB, {}, redacts="$own:b.example")
    room.denied(redaction, "event.power")


@pytest.mark.parametrize("version", versions(1, 2))
def test_v1_redaction_with_redact_level(version: str) -> None:
    room = Room.standard(version, power_levels={"redact": 30, "users": {CAROL: 30}})
    room.set_member(CAROL, "join")
    event = room.event(
        "m.room.redaction", CAROL, {}, event_id="$r:c.example", redacts="$target:a.example"
    )
    room.check(event)


@pytest.mark.parametrize("version", versions(1, 2))
def test_v1_redaction_of_own_server_events(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    same_server = room.event(
        "m.room.redaction", BOB, {}, event_id="$r:b.example", redacts="$target:b.example"
    )
    room.check(same_server)
    other_server = room.event(
        "m.room.redaction", BOB, {}, event_id="$r:b.example", redacts="$target:a.example"
    )
    room.denied(other_server, "redaction.power")
    no_target = room.event("m.room.redaction", BOB, {}, event_id="$r:b.example")
    room.denied(no_target, "redaction.power")


@pytest.mark.parametrize("version", versions(3, 12))
def test_redact_level_not_an_auth_rule_from_v3(version: str) -> None:
    room = Room.standard(version, power_levels={"redact": 100})
    room.set_member(BOB, "join")
    # Checked when the redaction is applied, not when the event is authorised.
    room.check(room.event("m.room.redaction", BOB, {}, redacts="$someone_elses"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_extra_state_in_the_map_is_ignored(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    room.send("m.room.topic", ALICE, {"topic": "t"}, state_key="")
    check_auth(room.rv, room.event("m.room.message", BOB, {"body": "hi"}), dict(room.state))
