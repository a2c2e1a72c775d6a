"""Auth rules for the create event and the checks every event goes through
before the type-specific ones: create event present, room 12's room id,
m.federate, and room 1-5's m.room.aliases special case.
"""

from __future__ import annotations

import pytest

from homeserver.events.auth import check_auth
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.events.factory import make_event
from tests.events.test_auth_support import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    DAVE,
    Room,
    assert_denied,
    make_create,
    versions,
)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_allowed(version: str) -> None:
    check_auth(KNOWN_ROOM_VERSIONS[version], make_create(version), {})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_with_prev_events_denied(version: str) -> None:
    create = make_create(version, prev=("$earlier",))
    assert_denied(KNOWN_ROOM_VERSIONS[version], create, {}, "create.has_prev_events")


@pytest.mark.parametrize("version", versions(1, 11))
def test_create_room_id_domain_must_be_sender_domain(version: str) -> None:
    rv = KNOWN_ROOM_VERSIONS[version]
    check_auth(rv, make_create(version, ALICE, room_id="!abc:a.example"), {})
    assert_denied(
        rv, make_create(version, ALICE, room_id="!abc:b.example"), {}, "create.room_id_domain"
    )
    assert_denied(rv, make_create(version, ALICE, room_id="!nodomain"), {}, "create.room_id_domain")


def test_v12_create_must_not_have_room_id() -> None:
    rv = KNOWN_ROOM_VERSIONS["12"]
    with_room_id = make_event(
        "m.room.create",
        ALICE,
        {"room_version": "12"},
        state_key="",
        room_version=rv,
        room_id="!abc:a.example",
    )
    assert_denied(rv, with_room_id, {}, "create.has_room_id")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("content_version", ["13", "0", 12, None, ""])
def test_create_unknown_room_version_denied(version: str, content_version: object) -> None:
    create = make_create(version, content={"room_version": content_version})
    assert_denied(KNOWN_ROOM_VERSIONS[version], create, {}, "create.unknown_room_version")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_without_room_version_allowed(version: str) -> None:
    create = make_create(version)
    del create.content["room_version"]
    check_auth(KNOWN_ROOM_VERSIONS[version], create, {})


@pytest.mark.parametrize("version", versions(1, 10))
def test_create_without_creator_denied_before_v11(version: str) -> None:
    create = make_create(version)
    del create.content["creator"]
    assert_denied(KNOWN_ROOM_VERSIONS[version], create, {}, "create.no_creator")


@pytest.mark.parametrize("version", ["11", "12"])
def test_create_without_creator_allowed_from_v11(version: str) -> None:
    create = make_create(version)
    assert "creator" not in create.content
    check_auth(KNOWN_ROOM_VERSIONS[version], create, {})


@pytest.mark.parametrize(
    "additional",
    [[BOB, DAVE], [], ["@legacy name:b.example"]],
)
def test_v12_valid_additional_creators(additional: list[str]) -> None:
    create = make_create("12", content={"additional_creators": additional})
    check_auth(KNOWN_ROOM_VERSIONS["12"], create, {})


@pytest.mark.parametrize(
    "additional",
    [BOB, [BOB, 5], ["bob:b.example"], ["@bob"], ["@bob:"], ["@bob:bad_host!"], [None], {}],
)
def test_v12_invalid_additional_creators_denied(additional: object) -> None:
    create = make_create("12", content={"additional_creators": additional})
    assert_denied(KNOWN_ROOM_VERSIONS["12"], create, {}, "create.invalid_additional_creators")


@pytest.mark.parametrize("version", versions(1, 11))
def test_additional_creators_not_validated_before_v12(version: str) -> None:
    create = make_create(version, content={"additional_creators": "not a list"})
    check_auth(KNOWN_ROOM_VERSIONS[version], create, {})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_no_create_event_denied(version: str) -> None:
    room = Room.standard(version)
    message = room.event("m.room.message", ALICE, {"body": "hi"})
    state = {k: v for k, v in room.state.items() if k != ("m.room.create", "")}
    assert_denied(room.rv, message, state, "auth_events.no_create")


def test_v12_room_id_must_derive_from_create_event() -> None:
    room = Room.standard("12")
    room.check(room.event("m.room.message", ALICE, {"body": "hi"}))
    other = make_event(
        "m.room.message",
        ALICE,
        {"body": "hi"},
        room_version="12",
        room_id="!elsewhere",
        prev=(room.last.event_id,),
    )
    room.denied(other, "room_id.not_create_event")


@pytest.mark.parametrize("version", versions(1, 11))
def test_room_id_not_tied_to_create_event_id_before_v12(version: str) -> None:
    room = Room.standard(version)
    assert room.room_id != "!" + room.create.event_id[1:]
    room.check(room.event("m.room.message", ALICE, {"body": "hi"}))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unfederated_room_rejects_remote_senders(version: str) -> None:
    room = Room.standard(version, create_content={"m.federate": False})
    # DAVE shares alice's server, BOB does not.
    room.set_member(DAVE, "join")
    room.check(room.event("m.room.message", DAVE, {"body": "hi"}))
    room.denied(room.member(BOB, "join"), "federate.forbidden")
    room.denied(room.event("m.room.message", BOB, {"body": "hi"}), "federate.forbidden")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_federate_true_or_odd_values_allow_remote_senders(version: str) -> None:
    for value in (True, "false", 0):
        room = Room.standard(version, create_content={"m.federate": value})
        room.check(room.member(BOB, "join"))


@pytest.mark.parametrize("version", versions(1, 5))
def test_aliases_special_case_before_v6(version: str) -> None:
    room = Room.standard(version)
    # BOB is not even in the room: only his server's name matters.
    room.check(room.event("m.room.aliases", BOB, {"aliases": []}, state_key="b.example"))
    room.denied(
        room.event("m.room.aliases", BOB, {"aliases": []}, state_key="a.example"),
        "aliases.domain_mismatch",
    )
    room.denied(room.event("m.room.aliases", BOB, {"aliases": []}), "aliases.no_state_key")


@pytest.mark.parametrize("version", versions(6, 12))
def test_aliases_are_ordinary_state_from_v6(version: str) -> None:
    room = Room.standard(version)
    room.denied(
        room.event("m.room.aliases", BOB, {"aliases": []}, state_key="b.example"),
        "sender_not_joined",
    )
    room.set_member(BOB, "join")
    room.denied(
        room.event("m.room.aliases", BOB, {"aliases": []}, state_key="b.example"), "event.power"
    )
    room.check(room.event("m.room.aliases", ALICE, {"aliases": []}, state_key="b.example"))
