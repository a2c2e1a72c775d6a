"""Building local events: auth event selection, depth, ids, hashes and signatures."""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key, get_verify_key
from signedjson.types import VerifyKey

from homeserver.events.builder import build_create_event, build_event
from homeserver.events.canonical import encode_base64
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import Event, StateKey, max_depth
from homeserver.events.hashing import check_content_hash, compute_reference_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import verify_event_signatures
from tests.events.factory import make_event

SERVER = "example.org"
KEY = generate_signing_key("1")
ALICE = "@alice:example.org"
BOB = "@bob:elsewhere.example"


def rv(version: str) -> RoomVersion:
    return KNOWN_ROOM_VERSIONS[version]


def lookup(server_name: str, key_id: str) -> VerifyKey | None:
    return get_verify_key(KEY) if (server_name, key_id) == (SERVER, "ed25519:1") else None


class Room:
    """A room built with the builder, tracking state and forward extremities."""

    def __init__(self, version: str) -> None:
        self.room_version = rv(version)
        create = build_create_event(
            self.room_version,
            sender=ALICE,
            content={"room_version": version},
            origin_server_ts=1,
            server_name=SERVER,
            signing_key=KEY,
            room_id=None if self.room_version.room_id_from_create_event else "!r:example.org",
        )
        self.room_id = create.room_id
        self.state: dict[StateKey, Event] = {}
        self.extremities: list[Event] = []
        self._add(create)

    def _add(self, event: Event) -> Event:
        if event.is_state:
            self.state[event.state_tuple] = event
        self.extremities = [event]
        return event

    def send(self, type: str, content: dict[str, Any], **kwargs: Any) -> Event:
        return self._add(
            build_event(
                self.room_version,
                room_id=self.room_id,
                type=type,
                sender=kwargs.pop("sender", ALICE),
                content=content,
                prev_events=self.extremities,
                state=lambda t, k: self.state.get((t, k)),
                origin_server_ts=2,
                server_name=SERVER,
                signing_key=KEY,
                **kwargs,
            )
        )


def started_room(version: str) -> Room:
    room = Room(version)
    room.send("m.room.member", {"membership": "join"}, state_key=ALICE)
    room.send("m.room.power_levels", {"users": {ALICE: 100}}, state_key="")
    room.send("m.room.join_rules", {"join_rule": "invite"}, state_key="")
    return room


@pytest.mark.parametrize("version", ["1", "3", "4", "10", "11", "12"])
def test_built_events_verify_and_have_their_reference_hash_as_id(version: str) -> None:
    room = started_room(version)
    event = room.send("m.room.message", {"body": "hello"})
    verify_event_signatures(event.pdu, room.room_version, lookup)
    assert check_content_hash(event.pdu)
    if room.room_version.hash_event_ids:
        digest = compute_reference_hash(event.pdu, room.room_version)
        expected = encode_base64(digest, urlsafe=room.room_version.url_safe_event_ids)
        assert event.event_id == "$" + expected
    else:
        assert event.event_id.endswith(":" + SERVER)
        assert event.pdu["event_id"] == event.event_id


def test_built_event_auth_events_are_the_selected_state() -> None:
    room = started_room("10")
    message = room.send("m.room.message", {"body": "hi"})
    assert set(message.auth_event_ids) == {
        room.state[key].event_id
        for key in [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", ALICE)]
    }
    invite = room.send("m.room.member", {"membership": "invite"}, state_key=BOB)
    # Bob has no membership yet: absent state is simply not listed.
    assert set(invite.auth_event_ids) == {
        room.state[key].event_id
        for key in [
            ("m.room.create", ""),
            ("m.room.power_levels", ""),
            ("m.room.member", ALICE),
            ("m.room.join_rules", ""),
        ]
    }


def test_room_12_create_event_defines_the_room_id() -> None:
    room = started_room("12")
    create = room.state[("m.room.create", "")]
    assert "room_id" not in create.pdu
    digest = compute_reference_hash(create.pdu, room.room_version)
    assert create.room_id == room.room_id == "!" + encode_base64(digest, urlsafe=True)
    message = room.send("m.room.message", {"body": "hi"})
    assert message.room_id == room.room_id
    assert create.event_id not in message.auth_event_ids


def test_room_1_references_carry_reference_hashes() -> None:
    room = started_room("1")
    previous = room.extremities[0]
    event = room.send("m.room.message", {"body": "hi"})
    digest = compute_reference_hash(previous.pdu, room.room_version)
    assert event.pdu["prev_events"] == [[previous.event_id, {"sha256": encode_base64(digest)}]]
    assert event.prev_event_ids == (previous.event_id,)


def hash_id(last: str = "A") -> str:
    """A well-formed hash event id for a hand-built prev event (rooms 4+)."""
    return "$" + "A" * 42 + last


def test_depth_is_one_more_than_the_deepest_prev_event() -> None:
    room = started_room("10")
    shallow = make_event("m.room.message", ALICE, depth=3, event_id=hash_id("a"))
    deep = make_event("m.room.message", ALICE, depth=7, event_id=hash_id("b"))
    room.extremities = [shallow, deep]
    assert room.send("m.room.message", {"body": "x"}).depth == 8


@pytest.mark.parametrize("version", ["5", "10"])
def test_depth_is_capped_at_the_room_version_limit(version: str) -> None:
    room = started_room(version)
    limit = max_depth(room.room_version)
    room.extremities = [
        make_event("m.room.message", ALICE, depth=limit, room_version=version, event_id=hash_id())
    ]
    assert room.send("m.room.message", {"body": "x"}).depth == limit


@pytest.mark.parametrize(("version", "top_level"), [("10", True), ("11", False)])
def test_redacts_goes_where_the_room_version_wants_it(version: str, top_level: bool) -> None:
    room = started_room(version)
    target = room.send("m.room.message", {"body": "oops"})
    redaction = room.send("m.room.redaction", {"reason": "r"}, redacts=target.event_id)
    assert redaction.redacts == target.event_id
    assert ("redacts" in redaction.pdu) is top_level
    assert ("redacts" in redaction.content) is not top_level
    assert redaction.content["reason"] == "r"


def test_create_event_room_id_must_fit_the_room_version() -> None:
    common: dict[str, Any] = {
        "sender": ALICE,
        "content": {},
        "origin_server_ts": 1,
        "server_name": SERVER,
        "signing_key": KEY,
    }
    with pytest.raises(ValueError, match="must not"):
        build_create_event(rv("12"), room_id="!r:example.org", **common)
    with pytest.raises(ValueError, match="must be given"):
        build_create_event(rv("10"), **common)


def test_only_the_create_event_lacks_prev_events() -> None:
    room = started_room("10")
    room.extremities = []
    with pytest.raises(ValueError, match="prev_events"):
        room.send("m.room.message", {"body": "x"})


def test_an_oversized_event_is_refused() -> None:
    room = started_room("10")
    with pytest.raises(InvalidEventError, match="bytes"):
        room.send("m.room.message", {"body": "x" * 70000})
