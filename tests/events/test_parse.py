"""parse_event: what a valid PDU looks like in each room version, and what is dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from signedjson.key import generate_signing_key

from homeserver.events.canonical import encode_base64, encode_canonical_json
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import MAX_PDU_BYTES, Event, parse_event
from homeserver.events.hashing import compute_reference_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import sign_event

KEY = generate_signing_key("1")
HASH_ID_V3 = "$" + "A" * 42 + "_"  # a well-formed URL-safe hash id
HASH_ID_V2 = "$" + "A" * 42 + "/"  # a well-formed standard-alphabet hash id
ROOM_ID_V12 = "!" + "B" * 42 + "-"


def rv(version: str) -> RoomVersion:
    return KNOWN_ROOM_VERSIONS[version]


def valid_pdu(version: str, **overrides: Any) -> dict[str, Any]:
    """A signed m.room.message PDU in the shape `version` requires."""
    room_version = rv(version)
    if version in ("1", "2"):
        refs: dict[str, Any] = {
            "event_id": "$local:example.org",
            "prev_events": [["$p:example.org", {"sha256": "abc"}]],
            "auth_events": [["$a:example.org", {}]],
        }
    else:
        ref = HASH_ID_V2 if version == "3" else HASH_ID_V3
        refs = {"prev_events": [ref], "auth_events": [ref]}
    pdu = {
        "room_id": ROOM_ID_V12 if room_version.room_id_from_create_event else "!r:example.org",
        "type": "m.room.message",
        "sender": "@alice:example.org",
        "content": {"body": "hi"},
        "depth": 5,
        "origin_server_ts": 1700000000000,
        **refs,
    }
    pdu.update(overrides)
    return sign_event(pdu, "example.org", KEY, room_version)


@pytest.mark.parametrize("version", sorted(KNOWN_ROOM_VERSIONS, key=int))
def test_a_valid_event_parses_in_every_version(version: str) -> None:
    pdu = valid_pdu(version)
    event = parse_event(pdu, rv(version))
    assert isinstance(event, Event)
    assert event.room_version is rv(version)
    assert event.type == "m.room.message"
    assert event.sender == "@alice:example.org"
    assert event.content == {"body": "hi"}
    assert event.state_key is None
    assert event.depth == 5
    assert event.origin_server_ts == 1700000000000
    assert event.redacts is None
    assert event.pdu is pdu


def test_room_1_takes_the_event_id_field_and_normalises_reference_pairs() -> None:
    event = parse_event(valid_pdu("1"), rv("1"))
    assert event.event_id == "$local:example.org"
    assert event.prev_event_ids == ("$p:example.org",)
    assert event.auth_event_ids == ("$a:example.org",)


@pytest.mark.parametrize(("version", "urlsafe"), [("3", False), ("4", True), ("11", True)])
def test_hash_formats_compute_the_event_id(version: str, urlsafe: bool) -> None:
    pdu = valid_pdu(version)
    event = parse_event(pdu, rv(version))
    expected = "$" + encode_base64(compute_reference_hash(pdu, rv(version)), urlsafe=urlsafe)
    assert event.event_id == expected
    assert event.prev_event_ids == event.auth_event_ids == (pdu["prev_events"][0],)


def test_expected_event_id_must_match() -> None:
    pdu = valid_pdu("10")
    event = parse_event(pdu, rv("10"))
    assert parse_event(pdu, rv("10"), event_id=event.event_id) == event
    with pytest.raises(InvalidEventError, match="expected event"):
        parse_event(pdu, rv("10"), event_id="$other")


def test_state_events_keep_their_state_key() -> None:
    pdu = valid_pdu("10", type="m.room.topic", state_key="", content={"topic": "t"})
    event = parse_event(pdu, rv("10"))
    assert event.state_tuple == ("m.room.topic", "")


def test_redacts_is_top_level_before_room_11_and_in_content_from_it() -> None:
    old = parse_event(valid_pdu("10", type="m.room.redaction", redacts=HASH_ID_V3), rv("10"))
    assert old.redacts == HASH_ID_V3
    new = valid_pdu("11", type="m.room.redaction", content={"redacts": HASH_ID_V3})
    assert parse_event(new, rv("11")).redacts == HASH_ID_V3
    # The other place is ignored in each case.
    ignored = valid_pdu("11", type="m.room.redaction", redacts=HASH_ID_V3)
    assert parse_event(ignored, rv("11")).redacts is None


def v12_create(**overrides: Any) -> dict[str, Any]:
    pdu = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@alice:example.org",
        "content": {"room_version": "12"},
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
        "origin_server_ts": 1,
        **overrides,
    }
    return sign_event(pdu, "example.org", KEY, rv("12"))


def test_room_12_create_event_has_a_derived_room_id() -> None:
    event = parse_event(v12_create(), rv("12"))
    assert event.room_id == "!" + event.event_id[1:]
    assert "room_id" not in event.pdu


def test_room_12_create_event_must_not_carry_a_room_id() -> None:
    with pytest.raises(InvalidEventError, match="no room_id"):
        parse_event(v12_create(room_id=ROOM_ID_V12), rv("12"))


def test_lenient_rooms_accept_floats_and_big_integers() -> None:
    pdu = valid_pdu("5", content={"f": 1.5, "big": 2**60}, depth=2**63 - 1)
    assert parse_event(pdu, rv("5")).depth == 2**63 - 1


def without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda pdu: pdu.pop(key)


def setting(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda pdu: pdu.__setitem__(key, value)


LONG = "x" * 256

BAD_CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    # (room version, description, change to a valid PDU, expected message part)
    ("10", "no type", without("type"), "type"),
    ("10", "type not a string", setting("type", 5), "type"),
    ("10", "type too long", setting("type", LONG), "type"),
    ("10", "state_key not a string", setting("state_key", 5), "state_key"),
    ("10", "state_key too long", setting("state_key", "é" * 128), "state_key"),
    ("10", "no sender", without("sender"), "sender"),
    ("10", "sender without sigil", setting("sender", "alice:example.org"), "sender"),
    ("10", "sender without server", setting("sender", "@alice"), "sender"),
    ("10", "sender with empty server", setting("sender", "@alice:"), "sender"),
    ("10", "sender with bad server", setting("sender", "@alice:exa mple.org"), "sender"),
    ("10", "sender with NUL", setting("sender", "@al\x00ice:example.org"), "sender"),
    ("10", "sender with bad port", setting("sender", "@a:example.org:123456"), "sender"),
    ("10", "sender too long", setting("sender", "@" + LONG + ":example.org"), "sender"),
    ("10", "no content", without("content"), "content"),
    ("10", "content a list", setting("content", []), "content"),
    ("10", "no depth", without("depth"), "depth"),
    ("10", "negative depth", setting("depth", -1), "depth"),
    ("10", "depth a bool", setting("depth", True), "depth"),
    ("5", "depth over 2**63-1", setting("depth", 2**63), "depth"),
    ("10", "no origin_server_ts", without("origin_server_ts"), "origin_server_ts"),
    ("10", "origin_server_ts a string", setting("origin_server_ts", "1"), "origin_server_ts"),
    ("5", "origin_server_ts over int64", setting("origin_server_ts", 2**63), "origin_server_ts"),
    ("10", "no hashes", without("hashes"), "hashes"),
    ("10", "hashes without sha256", setting("hashes", {"sha512": "x"}), "hashes"),
    ("10", "no signatures", without("signatures"), "signatures"),
    ("10", "signatures malformed", setting("signatures", {"s": "sig"}), "signatures"),
    ("10", "unsigned not an object", setting("unsigned", 5), "unsigned"),
    ("10", "no prev_events", without("prev_events"), "prev_events"),
    ("10", "prev_events a string", setting("prev_events", HASH_ID_V3), "prev_events"),
    ("10", "prev_events bad id", setting("prev_events", ["$short"]), "prev_events"),
    ("10", "prev_events not strings", setting("prev_events", [5]), "prev_events"),
    ("10", "21 prev_events", setting("prev_events", [HASH_ID_V3] * 21), "prev_events"),
    ("10", "11 auth_events", setting("auth_events", [HASH_ID_V3] * 11), "auth_events"),
    ("3", "URL-safe id in room 3", setting("prev_events", [HASH_ID_V3]), "prev_events"),
    ("4", "standard id in room 4", setting("auth_events", [HASH_ID_V2]), "auth_events"),
    ("1", "room 1 refs not pairs", setting("prev_events", ["$p:example.org"]), "pairs"),
    ("1", "room 1 pair too long", setting("auth_events", [["$a:x", {}, 1]]), "pairs"),
    ("1", "room 1 pair without server", setting("auth_events", [["$a", {}]]), "auth_events"),
    ("1", "room 1 no event_id", without("event_id"), "event_id"),
    ("1", "room 1 event_id without server", setting("event_id", "$local"), "event_id"),
    ("10", "no room_id", without("room_id"), "room_id"),
    ("10", "room_id without server", setting("room_id", "!room"), "room_id"),
    ("10", "room_id with event sigil", setting("room_id", "$r:example.org"), "room_id"),
    ("12", "room 12 room_id with server", setting("room_id", "!r:example.org"), "room_id"),
    ("12", "room 12 non-create without room_id", without("room_id"), "room_id"),
    ("6", "float in room 6", setting("content", {"f": 1.5}), "float"),
    ("6", "integer out of range in room 6", setting("content", {"n": 2**53}), "range"),
    ("6", "depth over 2**53-1 in room 6", setting("depth", 2**53), "range"),
    ("10", "lone surrogate", setting("content", {"body": "\ud800"}), "surrogate"),
    ("10", "whole event too big", setting("content", {"body": "x" * MAX_PDU_BYTES}), "bytes"),
]


@pytest.mark.parametrize(
    ("version", "change", "message"),
    [pytest.param(v, change, msg, id=f"v{v}: {desc}") for v, desc, change, msg in BAD_CASES],
)
def test_invalid_events_are_rejected(
    version: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    pdu = valid_pdu(version)
    change(pdu)
    with pytest.raises(InvalidEventError, match=message):
        parse_event(pdu, rv(version))


def test_a_pdu_must_be_an_object() -> None:
    with pytest.raises(InvalidEventError, match="object"):
        parse_event([], rv("10"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "overrides"),
    [
        ("10", {"redacts": 5}),
        ("10", {"redacts": "$not-a-hash"}),
        ("11", {"content": {"redacts": ["$x"]}}),
    ],
)
def test_redaction_with_a_bad_target_is_rejected(version: str, overrides: dict[str, Any]) -> None:
    pdu = valid_pdu(version, type="m.room.redaction", **overrides)
    with pytest.raises(InvalidEventError, match="redacts"):
        parse_event(pdu, rv(version))


def test_size_limit_counts_the_whole_canonical_event() -> None:
    pdu = valid_pdu("10", content={"body": ""})
    room_left = MAX_PDU_BYTES - len(encode_canonical_json(pdu))
    pdu["content"] = {"body": "x" * room_left}
    parse_event(pdu, rv("10"))
    pdu["content"] = {"body": "x" * (room_left + 1)}
    with pytest.raises(InvalidEventError, match="bytes"):
        parse_event(pdu, rv("10"))


@pytest.mark.parametrize(
    "server",
    ["example.org", "example.org:8448", "1.2.3.4", "1.2.3.4:1234", "[1234:5678::abcd]:5678"],
)
def test_sender_server_names_from_the_spec_grammar_are_accepted(server: str) -> None:
    pdu = valid_pdu("10", sender=f"@alice:{server}")
    assert parse_event(pdu, rv("10")).sender == f"@alice:{server}"


def test_historical_user_id_localparts_are_accepted() -> None:
    pdu = valid_pdu("10", sender="@Ällo Wörld!:example.org")
    assert parse_event(pdu, rv("10")).sender == "@Ällo Wörld!:example.org"
