"""The redaction algorithm, one test per difference between room versions.

The spec has no redaction vectors; the expected key lists below are copied by
hand from the room version pages (v1, v6, v8, v9 and v11 redaction sections).
"""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events.redaction import redact
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS

ALL_VERSIONS = sorted(KNOWN_ROOM_VERSIONS, key=int)

PRE_V11_TOP_LEVEL = {
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "prev_state",
    "auth_events",
    "origin",
    "origin_server_ts",
    "membership",
}
V11_TOP_LEVEL = PRE_V11_TOP_LEVEL - {"origin", "membership", "prev_state"}


def versions(first: int, last: int = 12) -> list[str]:
    return [v for v in ALL_VERSIONS if first <= int(v) <= last]


def full_pdu(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """A PDU holding every top-level key any version protects, plus some none does."""
    pdu: dict[str, Any] = {key: f"value of {key}" for key in PRE_V11_TOP_LEVEL}
    return pdu | {
        "type": event_type,
        "content": content,
        "unsigned": {"age": 1},
        "redacts": "$target",
        "custom_key": 1,
    }


def redacted_content(version: str, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return redact(full_pdu(event_type, content), KNOWN_ROOM_VERSIONS[version])["content"]


@pytest.mark.parametrize("version", versions(1, 10))
def test_top_level_keys_before_v11(version: str) -> None:
    redacted = redact(full_pdu("m.room.message", {}), KNOWN_ROOM_VERSIONS[version])
    assert set(redacted) == PRE_V11_TOP_LEVEL


@pytest.mark.parametrize("version", versions(11))
def test_top_level_keys_from_v11_drop_origin_membership_prev_state(version: str) -> None:
    redacted = redact(full_pdu("m.room.message", {}), KNOWN_ROOM_VERSIONS[version])
    assert set(redacted) == V11_TOP_LEVEL


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unsigned_and_unknown_keys_are_dropped_and_values_kept(version: str) -> None:
    pdu = full_pdu("m.room.message", {"body": "secret"})
    redacted = redact(pdu, KNOWN_ROOM_VERSIONS[version])
    assert "unsigned" not in redacted and "custom_key" not in redacted
    assert redacted["sender"] == "value of sender"
    assert redacted["content"] == {}
    assert pdu["content"] == {"body": "secret"}, "the input is not modified"


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_missing_or_malformed_content_redacts_to_an_empty_object(version: str) -> None:
    room_version = KNOWN_ROOM_VERSIONS[version]
    assert redact({"type": "m.room.member"}, room_version) == {
        "type": "m.room.member",
        "content": {},
    }
    assert redact({"type": "m.room.create", "content": [1]}, room_version)["content"] == {}


MEMBER = {
    "membership": "join",
    "displayname": "Alice",
    "avatar_url": "mxc://a/b",
    "join_authorised_via_users_server": "@mod:example.org",
    "third_party_invite": {"display_name": "alice@…", "signed": {"token": "t"}},
}


@pytest.mark.parametrize("version", versions(1, 8))
def test_member_before_v9_keeps_membership_only(version: str) -> None:
    assert redacted_content(version, "m.room.member", MEMBER) == {"membership": "join"}


@pytest.mark.parametrize("version", versions(9, 10))
def test_member_from_v9_keeps_join_authorised_via_users_server(version: str) -> None:
    assert redacted_content(version, "m.room.member", MEMBER) == {
        "membership": "join",
        "join_authorised_via_users_server": "@mod:example.org",
    }


@pytest.mark.parametrize("version", versions(11))
def test_member_from_v11_keeps_only_signed_of_third_party_invite(version: str) -> None:
    assert redacted_content(version, "m.room.member", MEMBER) == {
        "membership": "join",
        "join_authorised_via_users_server": "@mod:example.org",
        "third_party_invite": {"signed": {"token": "t"}},
    }
    unsigned_invite = {"membership": "invite", "third_party_invite": {"display_name": "x"}}
    assert redacted_content(version, "m.room.member", unsigned_invite) == {"membership": "invite"}


CREATE = {"creator": "@a:example.org", "room_version": "5", "m.federate": False}


@pytest.mark.parametrize("version", versions(1, 10))
def test_create_before_v11_keeps_creator_only(version: str) -> None:
    assert redacted_content(version, "m.room.create", CREATE) == {"creator": "@a:example.org"}


@pytest.mark.parametrize("version", versions(11))
def test_create_from_v11_keeps_all_content(version: str) -> None:
    assert redacted_content(version, "m.room.create", CREATE) == CREATE


JOIN_RULES = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}


@pytest.mark.parametrize("version", versions(1, 7))
def test_join_rules_before_v8_keep_join_rule_only(version: str) -> None:
    assert redacted_content(version, "m.room.join_rules", JOIN_RULES) == {"join_rule": "restricted"}


@pytest.mark.parametrize("version", versions(8))
def test_join_rules_from_v8_keep_allow(version: str) -> None:
    assert redacted_content(version, "m.room.join_rules", JOIN_RULES) == {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership"}],
    }


POWER_LEVELS = {
    "ban": 50,
    "events": {"m.room.name": 50},
    "events_default": 0,
    "invite": 0,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@a:example.org": 100},
    "users_default": 0,
    "notifications": {"room": 50},
}
PRE_V11_POWER_LEVEL_KEYS = {
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
}


@pytest.mark.parametrize("version", versions(1, 10))
def test_power_levels_before_v11(version: str) -> None:
    kept = redacted_content(version, "m.room.power_levels", POWER_LEVELS)
    assert kept == {k: POWER_LEVELS[k] for k in PRE_V11_POWER_LEVEL_KEYS}


@pytest.mark.parametrize("version", versions(11))
def test_power_levels_from_v11_keep_invite(version: str) -> None:
    kept = redacted_content(version, "m.room.power_levels", POWER_LEVELS)
    assert kept == {k: POWER_LEVELS[k] for k in PRE_V11_POWER_LEVEL_KEYS | {"invite"}}


ALIASES = {"aliases": ["#a:example.org"], "other": 1}


@pytest.mark.parametrize("version", versions(1, 5))
def test_aliases_kept_in_v1_to_v5(version: str) -> None:
    assert redacted_content(version, "m.room.aliases", ALIASES) == {"aliases": ["#a:example.org"]}


@pytest.mark.parametrize("version", versions(6))
def test_aliases_not_protected_from_v6(version: str) -> None:
    assert redacted_content(version, "m.room.aliases", ALIASES) == {}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_history_visibility_kept_in_every_version(version: str) -> None:
    content = {"history_visibility": "shared", "other": 1}
    assert redacted_content(version, "m.room.history_visibility", content) == {
        "history_visibility": "shared"
    }


REDACTION = {"redacts": "$target", "reason": "spam"}


@pytest.mark.parametrize("version", versions(1, 10))
def test_redaction_content_emptied_before_v11(version: str) -> None:
    assert redacted_content(version, "m.room.redaction", REDACTION) == {}


@pytest.mark.parametrize("version", versions(11))
def test_redaction_from_v11_keeps_content_redacts(version: str) -> None:
    assert redacted_content(version, "m.room.redaction", REDACTION) == {"redacts": "$target"}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_other_types_lose_all_content(version: str) -> None:
    assert redacted_content(version, "m.room.topic", {"topic": "x"}) == {}
    assert redacted_content(version, "m.room.name", {"name": "x"}) == {}
