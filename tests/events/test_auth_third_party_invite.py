"""Third-party invites: the m.room.third_party_invite event and the member
invite that completes it, signed by a real ed25519 identity server key.
"""

from __future__ import annotations

from typing import Any

import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey
from unpaddedbase64 import encode_base64

from tests.events.test_auth_support import ALICE, ALL_VERSIONS, BOB, CAROL, Room

TOKEN = "abc123"


def sign(signed: dict[str, Any], key: SigningKey, server: str = "id.example") -> dict[str, Any]:
    """`signed` with an identity server signature, computed by hand (canonical
    JSON of the object without signatures, ed25519, unpadded base64).
    """
    signature = key.sign(encode_canonical_json(signed)).signature
    return {**signed, "signatures": {server: {"ed25519:0": encode_base64(signature)}}}


def public_key(key: SigningKey, urlsafe: bool = False) -> str:
    return encode_base64(key.verify_key.encode(), urlsafe=urlsafe)


def _room(version: str, key: SigningKey, **invite_content: Any) -> Room:
    """ALICE's invite-only room where ALICE has issued a third-party invite."""
    room = Room.standard(version, join_rule="invite")
    content = {"display_name": "b...@example.com", "public_key": public_key(key)}
    content.update(invite_content)
    room.send("m.room.third_party_invite", ALICE, content, state_key=TOKEN)
    return room


def _invite(room: Room, signed: object, sender: str = ALICE, target: str = BOB) -> Any:
    return room.member(
        target,
        "invite",
        sender=sender,
        third_party_invite={"display_name": "b...@example.com", "signed": signed},
    )


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_third_party_invite_event_needs_invite_level(version: str) -> None:
    room = Room.standard(version, power_levels={"invite": 20})
    room.set_member(BOB, "join")
    event = room.event("m.room.third_party_invite", BOB, {"public_key": "x"}, state_key=TOKEN)
    room.denied(event, "third_party_invite.power")
    room.check(room.event("m.room.third_party_invite", ALICE, {"public_key": "x"}, state_key=TOKEN))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_third_party_invite_event_by_non_member_denied(version: str) -> None:
    room = Room.standard(version)
    event = room.event("m.room.third_party_invite", BOB, {"public_key": "x"}, state_key=TOKEN)
    room.denied(event, "sender_not_joined")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_signed_third_party_invite_allowed(version: str) -> None:
    key = SigningKey.generate()
    room = _room(version, key)
    room.check(_invite(room, sign({"mxid": BOB, "token": TOKEN}, key)))


def test_key_from_public_keys_list_and_urlsafe_base64() -> None:
    old_key, new_key = SigningKey.generate(), SigningKey.generate()
    room = _room(
        "10",
        old_key,
        public_keys=[
            {"public_key": "not base64!", "key_validity_url": "https://id.example/v"},
            {"public_key": public_key(new_key, urlsafe=True)},
        ],
    )
    room.check(_invite(room, sign({"mxid": BOB, "token": TOKEN}, new_key)))
    room.check(_invite(room, sign({"mxid": BOB, "token": TOKEN}, old_key)))


def test_any_matching_signature_suffices() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    room = _room("10", key)
    signed = sign({"mxid": BOB, "token": TOKEN}, key)
    by_other = sign({"mxid": BOB, "token": TOKEN}, other, server="aaa.example")
    signed["signatures"] = {**by_other["signatures"], **signed["signatures"]}
    room.check(_invite(room, signed))


def test_third_party_invite_needs_no_membership_or_power_of_sender() -> None:
    # The sender must have sent the m.room.third_party_invite: no other check.
    key = SigningKey.generate()
    room = _room("10", key)
    room.set_member(ALICE, "leave")
    room.check(_invite(room, sign({"mxid": BOB, "token": TOKEN}, key)))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_banned_target_denied(version: str) -> None:
    key = SigningKey.generate()
    room = _room(version, key)
    room.set_member(BOB, "ban", sender=ALICE)
    room.denied(
        _invite(room, sign({"mxid": BOB, "token": TOKEN}, key)),
        "member.invite.third_party.banned",
    )


@pytest.mark.parametrize("third_party_invite", [{}, {"signed": "x"}, "x", None])
def test_missing_signed_denied(third_party_invite: object) -> None:
    room = _room("10", SigningKey.generate())
    event = room.member(BOB, "invite", sender=ALICE, third_party_invite=third_party_invite)
    room.denied(event, "member.invite.third_party.no_signed")


@pytest.mark.parametrize(
    "signed", [{"token": TOKEN}, {"mxid": BOB}, {"mxid": BOB, "token": 5}, {"mxid": None}]
)
def test_signed_without_mxid_or_token_denied(signed: dict[str, Any]) -> None:
    room = _room("10", SigningKey.generate())
    room.denied(_invite(room, signed), "member.invite.third_party.no_mxid_or_token")


def test_mxid_must_be_target() -> None:
    key = SigningKey.generate()
    room = _room("10", key)
    room.denied(
        _invite(room, sign({"mxid": CAROL, "token": TOKEN}, key)),
        "member.invite.third_party.mxid_mismatch",
    )


def test_token_must_name_a_third_party_invite_event() -> None:
    key = SigningKey.generate()
    room = _room("10", key)
    room.denied(
        _invite(room, sign({"mxid": BOB, "token": "other"}, key)),
        "member.invite.third_party.no_invite_event",
    )


def test_sender_must_be_sender_of_third_party_invite_event() -> None:
    key = SigningKey.generate()
    room = _room("10", key)
    room.set_member(CAROL, "invite", sender=ALICE)
    room.set_member(CAROL, "join")
    room.denied(
        _invite(room, sign({"mxid": BOB, "token": TOKEN}, key), sender=CAROL),
        "member.invite.third_party.sender_mismatch",
    )


def test_signature_by_unknown_key_denied() -> None:
    room = _room("10", SigningKey.generate())
    room.denied(
        _invite(room, sign({"mxid": BOB, "token": TOKEN}, SigningKey.generate())),
        "member.invite.third_party.bad_signature",
    )


def test_tampered_signed_block_denied() -> None:
    key = SigningKey.generate()
    room = _room("10", key)
    signed = sign({"mxid": BOB, "token": TOKEN}, key)
    signed["extra"] = "added after signing"
    room.denied(_invite(room, signed), "member.invite.third_party.bad_signature")


@pytest.mark.parametrize(
    "signatures",
    [
        None,
        {},
        {"id.example": "x"},
        {"id.example": {"ed25519:0": 5}},
        {"id.example": {"ed25519:0": "!!!"}},
        {"id.example": {"ed25519:0": "AAAA"}},
    ],
)
def test_malformed_signatures_denied(signatures: object) -> None:
    room = _room("10", SigningKey.generate())
    signed = {"mxid": BOB, "token": TOKEN, "signatures": signatures}
    room.denied(_invite(room, signed), "member.invite.third_party.bad_signature")


def test_non_ed25519_key_ids_ignored() -> None:
    key = SigningKey.generate()
    room = _room("10", key)
    signed = sign({"mxid": BOB, "token": TOKEN}, key)
    signed["signatures"] = {
        "id.example": {"curve25519:0": signed["signatures"]["id.example"]["ed25519:0"]}
    }
    room.denied(_invite(room, signed), "member.invite.third_party.bad_signature")


def test_unusable_public_keys_denied() -> None:
    key = SigningKey.generate()
    room = _room("10", key, public_key="AAAA", public_keys=["not an object", {"public_key": 5}])
    room.denied(
        _invite(room, sign({"mxid": BOB, "token": TOKEN}, key)),
        "member.invite.third_party.bad_signature",
    )
