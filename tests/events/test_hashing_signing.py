"""Hashes, event ids and signatures, against the spec's signing vectors and rules."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from signedjson.key import decode_signing_key_base64, generate_signing_key, get_verify_key
from signedjson.types import SigningKey, VerifyKey

from homeserver.events.canonical import encode_base64, encode_canonical_json
from homeserver.events.errors import InvalidEventError, SignatureError
from homeserver.events.hashing import (
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    room_id_from_create_event,
)
from homeserver.events.redaction import redact
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import (
    KeyLookup,
    key_validity_ts,
    required_signature_servers,
    sign_event,
    sign_json,
    verify_event_signatures,
    verify_json_signature,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
V1 = KNOWN_ROOM_VERSIONS["1"]
V3 = KNOWN_ROOM_VERSIONS["3"]
V4 = KNOWN_ROOM_VERSIONS["4"]
V5 = KNOWN_ROOM_VERSIONS["5"]
V8 = KNOWN_ROOM_VERSIONS["8"]
V10 = KNOWN_ROOM_VERSIONS["10"]
V12 = KNOWN_ROOM_VERSIONS["12"]


def load_signing_vectors() -> dict[str, Any]:
    """The spec's vectors must be there: a missing file fails the test, never skips it."""
    path = VECTORS / "signing.json"
    assert path.is_file(), f"spec vectors missing: {path}"
    return json.loads(path.read_text(encoding="utf-8"))


SIGNING = load_signing_vectors()
VECTOR_KEY = decode_signing_key_base64(
    "ed25519", SIGNING["key_id"].split(":", 1)[1], SIGNING["signing_key_seed_base64"]
)


def lookup_for(keys: dict[str, SigningKey]) -> KeyLookup:
    """A key lookup that knows the verify keys of `keys` (server name -> signing key)."""

    def lookup(server_name: str, key_id: str) -> VerifyKey | None:
        key = keys.get(server_name)
        if key is None or f"{key.alg}:{key.version}" != key_id:
            return None
        return get_verify_key(key)

    return lookup


VECTOR_LOOKUP = lookup_for({SIGNING["server_name"]: VECTOR_KEY})


@pytest.mark.parametrize("case", SIGNING["json_signing"])
def test_json_signing_vectors(case: dict[str, Any]) -> None:
    signed = sign_json(case["input"], SIGNING["server_name"], VECTOR_KEY)
    assert signed == case["signed"]
    verify_json_signature(signed, SIGNING["server_name"], VECTOR_LOOKUP)


@pytest.mark.parametrize("case", SIGNING["event_signing"])
def test_event_signing_vectors(case: dict[str, Any]) -> None:
    original = copy.deepcopy(case["input"])
    signed = sign_event(case["input"], SIGNING["server_name"], VECTOR_KEY, V1)
    assert signed == case["signed"]
    assert case["input"] == original, "signing must not mutate its input"
    assert check_content_hash(signed)
    # The first vector has no event_id, so it is not a complete room 1 event:
    # check the signature on the redacted form directly.
    verify_json_signature(redact(signed, V1), SIGNING["server_name"], VECTOR_LOOKUP)


def test_sign_json_keeps_other_signatures() -> None:
    other = generate_signing_key("a")
    once = sign_json({"x": 1}, "other.example", other)
    twice = sign_json(once, SIGNING["server_name"], VECTOR_KEY)
    assert set(twice["signatures"]) == {"other.example", SIGNING["server_name"]}
    assert set(once["signatures"]) == {"other.example"}
    verify_json_signature(twice, "other.example", lookup_for({"other.example": other}))


def test_verify_json_signature_failures() -> None:
    signed = sign_json({"x": 1}, SIGNING["server_name"], VECTOR_KEY)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_json_signature({**signed, "x": 2}, SIGNING["server_name"], VECTOR_LOOKUP)
    with pytest.raises(SignatureError, match="no signature from"):
        verify_json_signature(signed, "elsewhere", VECTOR_LOOKUP)
    with pytest.raises(SignatureError, match="known key"):
        verify_json_signature(signed, SIGNING["server_name"], lambda server, key_id: None)
    with pytest.raises(SignatureError, match="no signatures"):
        verify_json_signature({"x": 1}, SIGNING["server_name"], VECTOR_LOOKUP)


def test_unknown_algorithms_and_keys_are_skipped_but_one_key_must_verify() -> None:
    signed = sign_json({"x": 1}, SIGNING["server_name"], VECTOR_KEY)
    signed["signatures"][SIGNING["server_name"]]["curve999:z"] = "AAAA"
    signed["signatures"][SIGNING["server_name"]]["ed25519:unknown"] = "AAAA"
    verify_json_signature(signed, SIGNING["server_name"], VECTOR_LOOKUP)
    del signed["signatures"][SIGNING["server_name"]]["ed25519:1"]
    with pytest.raises(SignatureError, match="known key"):
        verify_json_signature(signed, SIGNING["server_name"], VECTOR_LOOKUP)


def _message(room_version_id: str = "10", **extra: Any) -> dict[str, Any]:
    pdu = {
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "type": "m.room.message",
        "content": {"body": "hello"},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "origin_server_ts": 1000,
    }
    return pdu | extra


def test_content_hash_ignores_unsigned_signatures_and_hashes() -> None:
    pdu = _message()
    noisy = pdu | {"unsigned": {"age": 5}, "signatures": {"x": {}}, "hashes": {"sha256": "x"}}
    assert compute_content_hash(noisy) == hashlib.sha256(encode_canonical_json(pdu)).digest()


def test_content_hash_check_detects_changed_and_missing_hashes() -> None:
    signed = sign_event(_message(), "domain", VECTOR_KEY, V10)
    assert check_content_hash(signed)
    assert check_content_hash(signed | {"unsigned": {"age": 1}})
    assert not check_content_hash(signed | {"content": {"body": "changed"}})
    assert not check_content_hash({k: v for k, v in signed.items() if k != "hashes"})
    assert not check_content_hash(signed | {"hashes": {"sha256": "!!not base64 at all"}})
    assert not check_content_hash(signed | {"hashes": {"sha256": 5}})


def test_redacted_copy_still_verifies_but_fails_the_hash_check() -> None:
    signed = sign_event(_message(), "domain", VECTOR_KEY, V10)
    redacted = redact(signed, V10)
    verify_event_signatures(redacted, V10, VECTOR_LOOKUP)
    assert not check_content_hash(redacted)


def test_changing_a_protected_key_breaks_the_signature() -> None:
    signed = sign_event(_message(), "domain", VECTOR_KEY, V10)
    verify_event_signatures(signed | {"content": {"body": "forged"}}, V10, VECTOR_LOOKUP)
    with pytest.raises(InvalidEventError, match="signature"):
        verify_event_signatures(signed | {"depth": 4}, V10, VECTOR_LOOKUP)


def test_reference_hash_covers_the_redacted_event_without_signatures() -> None:
    signed = sign_event(_message(), "domain", VECTOR_KEY, V10)
    expected_input = redact(signed, V10)
    del expected_input["signatures"]
    expected = hashlib.sha256(encode_canonical_json(expected_input)).digest()
    assert compute_reference_hash(signed, V10) == expected
    # Unprotected content and unsigned data do not change it; signatures neither.
    assert compute_reference_hash(signed | {"content": {}, "unsigned": {"a": 1}}, V10) == expected
    assert compute_reference_hash(signed | {"signatures": {}}, V10) == expected


def _event_with_both_alphabets_in_its_hash(room_version_id: str) -> dict[str, Any]:
    """A PDU whose reference hash's standard base64 holds '+' or '/' (found by search)."""
    room_version = KNOWN_ROOM_VERSIONS[room_version_id]
    for n in range(1000):
        pdu = _message(origin_server_ts=n, hashes={"sha256": "x"})
        encoded = encode_base64(compute_reference_hash(pdu, room_version))
        if "+" in encoded and "/" in encoded:
            return pdu
    raise AssertionError("no suitable PDU found")


def test_event_id_room_3_is_standard_base64_of_the_reference_hash() -> None:
    pdu = _event_with_both_alphabets_in_its_hash("3")
    event_id = compute_event_id(pdu, V3)
    assert event_id == "$" + encode_base64(compute_reference_hash(pdu, V3))
    assert "+" in event_id and "/" in event_id


def test_event_id_room_4_is_url_safe_base64_of_the_reference_hash() -> None:
    pdu = _event_with_both_alphabets_in_its_hash("4")
    event_id = compute_event_id(pdu, V4)
    assert event_id == "$" + encode_base64(compute_reference_hash(pdu, V4), urlsafe=True)
    assert "+" not in event_id and "/" not in event_id
    assert len(event_id) == 44


def test_event_id_rooms_1_and_2_is_the_event_id_field() -> None:
    assert compute_event_id(_message(event_id="$abc:domain"), V1) == "$abc:domain"
    with pytest.raises(InvalidEventError, match="event_id"):
        compute_event_id(_message(), V1)


def test_room_12_room_id_is_the_create_event_reference_hash() -> None:
    create = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@u:domain",
        "content": {"room_version": "12"},
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
        "origin_server_ts": 1,
        "hashes": {"sha256": "x"},
    }
    room_id = room_id_from_create_event(create, V12)
    assert room_id == "!" + encode_base64(compute_reference_hash(create, V12), urlsafe=True)
    assert room_id[1:] == compute_event_id(create, V12)[1:]
    with pytest.raises(ValueError):
        room_id_from_create_event(create, V10)


def _member(membership: str, **content: Any) -> dict[str, Any]:
    return _message(
        type="m.room.member",
        sender="@alice:a.example",
        state_key="@bob:b.example",
        content={"membership": membership, **content},
    )


def test_required_servers_is_the_sender_server() -> None:
    assert required_signature_servers(_member("invite"), V10) == {"a.example"}


def test_required_servers_rooms_1_and_2_add_the_event_id_server() -> None:
    pdu = _member("invite") | {"event_id": "$x:c.example:8448"}
    assert required_signature_servers(pdu, V1) == {"a.example", "c.example:8448"}
    assert required_signature_servers(pdu, V3) == {"a.example"}


def test_required_servers_third_party_invite_does_not_need_the_sender_server() -> None:
    pdu = _member("invite", third_party_invite={"signed": {"token": "t"}})
    assert required_signature_servers(pdu, V10) == set()


def test_required_servers_restricted_join_adds_the_authorising_server() -> None:
    pdu = _member("join", join_authorised_via_users_server="@mod:c.example")
    assert required_signature_servers(pdu, V8) == {"a.example", "c.example"}
    # Before restricted rooms existed the key means nothing.
    assert required_signature_servers(pdu, KNOWN_ROOM_VERSIONS["7"]) == {"a.example"}


def test_required_servers_needs_a_server_in_the_ids() -> None:
    with pytest.raises(InvalidEventError, match="sender"):
        required_signature_servers(_message(sender="@nobody"), V10)
    pdu = _member("join", join_authorised_via_users_server=5)
    with pytest.raises(InvalidEventError, match="join_authorised_via_users_server"):
        required_signature_servers(pdu, V8)


def test_verify_event_needs_every_required_server() -> None:
    authoriser = generate_signing_key("k")
    pdu = _member("join", join_authorised_via_users_server="@mod:c.example")
    by_sender = sign_event(pdu, "a.example", VECTOR_KEY, V10)
    lookup = lookup_for({"a.example": VECTOR_KEY, "c.example": authoriser})
    with pytest.raises(InvalidEventError, match="c.example"):
        verify_event_signatures(by_sender, V10, lookup)
    by_both = sign_event(by_sender, "c.example", authoriser, V10)
    verify_event_signatures(by_both, V10, lookup)


def test_verify_event_rooms_1_and_2_need_the_event_id_server() -> None:
    origin = generate_signing_key("o")
    pdu = _message(event_id="$x:origin.example", sender="@u:domain")
    signed = sign_event(pdu, "domain", VECTOR_KEY, V1)
    lookup = lookup_for({"domain": VECTOR_KEY, "origin.example": origin})
    with pytest.raises(InvalidEventError, match="origin.example"):
        verify_event_signatures(signed, V1, lookup)
    verify_event_signatures(sign_event(signed, "origin.example", origin, V1), V1, lookup)


def test_key_validity_is_enforced_from_room_5() -> None:
    pdu = _message(origin_server_ts=1234)
    assert key_validity_ts(pdu, V4) is None
    assert key_validity_ts(pdu, V5) == 1234
    with pytest.raises(InvalidEventError):
        key_validity_ts(_message(origin_server_ts="1234"), V5)
