"""Auth events selection and the rules "considering the event's auth events"."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.auth import (
    auth_types_for_event,
    check_auth,
    check_auth_events_selection,
)
from homeserver.events.errors import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.events.factory import make_event
from tests.events.test_auth_support import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    Room,
    versions,
)

CREATE = ("m.room.create", "")
PL = ("m.room.power_levels", "")
JR = ("m.room.join_rules", "")


def _member(user: str) -> tuple[str, str]:
    return ("m.room.member", user)


def _types(version: str, **fields: Any) -> set[tuple[str, str]]:
    return auth_types_for_event(KNOWN_ROOM_VERSIONS[version], fields)


@pytest.mark.parametrize("version", versions(1, 11))
def test_selection_for_a_message(version: str) -> None:
    expected = {CREATE, PL, _member(BOB)}
    assert _types(version, type="m.room.message", sender=BOB, content={}) == expected


def test_v12_never_selects_the_create_event() -> None:
    assert _types("12", type="m.room.message", sender=BOB, content={}) == {PL, _member(BOB)}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_event_has_no_auth_events(version: str) -> None:
    assert _types(version, type="m.room.create", sender=ALICE, state_key="", content={}) == set()


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(
    ("membership", "with_join_rules"),
    [("join", True), ("invite", True), ("knock", True), ("leave", False), ("ban", False)],
)
def test_selection_for_membership(version: str, membership: str, with_join_rules: bool) -> None:
    types = _types(
        version,
        type="m.room.member",
        sender=ALICE,
        state_key=BOB,
        content={"membership": membership},
    )
    expected = {PL, _member(ALICE), _member(BOB)}
    if version != "12":
        expected.add(CREATE)
    if with_join_rules:
        expected.add(JR)
    assert types == expected


def test_selection_for_third_party_invite() -> None:
    content = {
        "membership": "invite",
        "third_party_invite": {"signed": {"mxid": BOB, "token": "tok", "signatures": {}}},
    }
    types = _types("10", type="m.room.member", sender=ALICE, state_key=BOB, content=content)
    assert ("m.room.third_party_invite", "tok") in types
    content["third_party_invite"] = {"signed": {"mxid": BOB}}
    types = _types("10", type="m.room.member", sender=ALICE, state_key=BOB, content=content)
    assert not any(t == "m.room.third_party_invite" for t, _ in types)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_selection_for_restricted_join_from_v8(version: str) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": CAROL}
    types = _types(version, type="m.room.member", sender=BOB, state_key=BOB, content=content)
    assert (_member(CAROL) in types) == KNOWN_ROOM_VERSIONS[version].restricted_join_rule


def test_selection_accepts_an_event() -> None:
    event = make_event("m.room.member", ALICE, {"membership": "ban"}, state_key=BOB)
    assert auth_types_for_event(event.room_version, event) == {
        CREATE,
        PL,
        _member(ALICE),
        _member(BOB),
    }


def _auth_events(room: Room, event: Event) -> list[Event]:
    """The events the selection algorithm picks for `event` from the room state."""
    return [room.state[k] for k in auth_types_for_event(room.rv, event) if k in room.state]


@pytest.mark.parametrize("version", versions(1, 11))
def test_valid_auth_events_give_the_state_map(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    event = room.event("m.room.message", BOB, {"body": "hi"})
    selected = check_auth_events_selection(room.rv, event, _auth_events(room, event))
    assert set(selected) == {CREATE, PL, _member(BOB)}
    check_auth(room.rv, event, selected)


def test_v12_create_event_passed_separately() -> None:
    room = Room.standard("12")
    room.set_member(BOB, "join")
    event = room.event("m.room.message", BOB, {"body": "hi"})
    auth = _auth_events(room, event)
    assert room.create not in auth
    selected = check_auth_events_selection(room.rv, event, auth, create_event=room.create)
    assert selected[CREATE] is room.create
    check_auth(room.rv, event, selected)
    without = check_auth_events_selection(room.rv, event, auth)
    with pytest.raises(AuthError) as info:
        check_auth(room.rv, event, without)
    assert info.value.rule == "auth_events.no_create"


def test_v12_create_event_among_auth_events_is_unexpected() -> None:
    room = Room.standard("12")
    event = room.event("m.room.message", ALICE, {"body": "hi"})
    with pytest.raises(AuthError) as info:
        check_auth_events_selection(room.rv, event, [*_auth_events(room, event), room.create])
    assert info.value.rule == "auth_events.unexpected"


def _selection_error(room: Room, event: Event, auth: list[Event]) -> str:
    with pytest.raises(AuthError) as info:
        check_auth_events_selection(room.rv, event, auth, create_event=room.create)
    return info.value.rule


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_duplicate_auth_events_denied(version: str) -> None:
    room = Room.standard(version)
    event = room.event("m.room.message", ALICE, {"body": "hi"})
    auth = _auth_events(room, event)
    older_pl = room.event("m.room.power_levels", ALICE, {"users": {}}, state_key="")
    assert _selection_error(room, event, [*auth, older_pl]) == "auth_events.duplicate"


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unexpected_auth_events_denied(version: str) -> None:
    room = Room.standard(version)
    event = room.event("m.room.message", ALICE, {"body": "hi"})
    auth = _auth_events(room, event)
    join_rules = room.state[JR]
    assert _selection_error(room, event, [*auth, join_rules]) == "auth_events.unexpected"
    message = room.event("m.room.message", ALICE, {"body": "earlier"})
    assert _selection_error(room, event, [*auth, message]) == "auth_events.unexpected"


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_auth_events_from_another_room_denied(version: str) -> None:
    room = Room.standard(version)
    event = room.event("m.room.message", ALICE, {"body": "hi"})
    auth = [e for e in _auth_events(room, event) if e.type != "m.room.power_levels"]
    foreign_pl = make_event(
        "m.room.power_levels", ALICE, {}, state_key="", room_version=version, room_id="!other:x"
    )
    assert _selection_error(room, event, [*auth, foreign_pl]) == "auth_events.wrong_room"


@pytest.mark.parametrize("version", versions(1, 11))
def test_missing_create_event_denied_before_v12(version: str) -> None:
    room = Room.standard(version)
    event = room.event("m.room.message", ALICE, {"body": "hi"})
    auth = [e for e in _auth_events(room, event) if e.type != "m.room.create"]
    assert _selection_error(room, event, auth) == "auth_events.no_create"


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_event_skips_selection_rules(version: str) -> None:
    room = Room(version)
    assert check_auth_events_selection(room.rv, room.create, []) == {}
