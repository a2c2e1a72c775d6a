import json

import pytest

from homeserver.push.default_rules import default_push_rules

USER = "@alice:example.org"

OVERRIDE_IDS = [
    ".m.rule.master",
    ".m.rule.suppress_notices",
    ".m.rule.invite_for_me",
    ".m.rule.member_event",
    ".m.rule.is_user_mention",
    ".m.rule.is_room_mention",
    ".m.rule.tombstone",
    ".m.rule.reaction",
    ".m.rule.room.server_acl",
    ".m.rule.suppress_edits",
]
UNDERRIDE_IDS = [
    ".m.rule.call",
    ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one",
    ".m.rule.message",
    ".m.rule.encrypted",
]
LEGACY_OVERRIDE_IDS = [
    ".m.rule.master",
    ".m.rule.suppress_notices",
    ".m.rule.invite_for_me",
    ".m.rule.member_event",
    ".m.rule.is_user_mention",
    ".m.rule.contains_display_name",
    ".m.rule.is_room_mention",
    ".m.rule.roomnotif",
    ".m.rule.tombstone",
    ".m.rule.reaction",
    ".m.rule.room.server_acl",
    ".m.rule.suppress_edits",
]
KINDS = ["override", "content", "room", "sender", "underride"]


def ids(rules):
    return [r["rule_id"] for r in rules]


def by_id(ruleset, rule_id):
    for kind in KINDS:
        for rule in ruleset["global"][kind]:
            if rule["rule_id"] == rule_id:
                return rule
    raise KeyError(rule_id)


@pytest.mark.parametrize("legacy", [False, True])
def test_shape(legacy):
    rules = default_push_rules(USER, legacy_mentions=legacy)
    assert list(rules) == ["global"]
    assert sorted(rules["global"]) == sorted(KINDS)
    assert rules["global"]["room"] == []
    assert rules["global"]["sender"] == []


def test_rule_ids_in_spec_order():
    g = default_push_rules(USER)["global"]
    assert ids(g["override"]) == OVERRIDE_IDS
    assert ids(g["content"]) == []
    assert ids(g["underride"]) == UNDERRIDE_IDS


def test_legacy_rule_ids_in_order():
    g = default_push_rules(USER, legacy_mentions=True)["global"]
    assert ids(g["override"]) == LEGACY_OVERRIDE_IDS
    assert ids(g["content"]) == [".m.rule.contains_user_name"]
    assert ids(g["underride"]) == UNDERRIDE_IDS


@pytest.mark.parametrize("legacy", [False, True])
def test_required_keys_and_enabled(legacy):
    g = default_push_rules(USER, legacy_mentions=legacy)["global"]
    for kind in KINDS:
        for rule in g[kind]:
            assert rule["rule_id"].startswith(".m.rule.")
            assert rule["default"] is True
            assert rule["enabled"] is (rule["rule_id"] != ".m.rule.master")
            assert isinstance(rule["actions"], list)
            if kind == "content":
                assert isinstance(rule["pattern"], str)
                assert "conditions" not in rule
            else:
                assert isinstance(rule["conditions"], list)
                assert "pattern" not in rule
                for cond in rule["conditions"]:
                    assert isinstance(cond["kind"], str)


def test_master_rule_is_disabled_and_matches_everything():
    master = by_id(default_push_rules(USER), ".m.rule.master")
    assert master == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }


def test_user_specific_fields():
    rules = default_push_rules(USER, legacy_mentions=True)
    invite = by_id(rules, ".m.rule.invite_for_me")
    assert invite["conditions"] == [
        {"kind": "event_match", "key": "type", "pattern": "m.room.member"},
        {"kind": "event_match", "key": "content.membership", "pattern": "invite"},
        {"kind": "event_match", "key": "state_key", "pattern": USER},
    ]
    mention = by_id(rules, ".m.rule.is_user_mention")
    assert mention["conditions"] == [
        {
            "kind": "event_property_contains",
            "key": "content.m\\.mentions.user_ids",
            "value": USER,
        }
    ]
    assert by_id(rules, ".m.rule.contains_user_name")["pattern"] == "alice"

    other = default_push_rules("@bob:other.test", legacy_mentions=True)
    assert by_id(other, ".m.rule.invite_for_me")["conditions"][2]["pattern"] == "@bob:other.test"
    assert by_id(other, ".m.rule.is_user_mention")["conditions"][0]["value"] == "@bob:other.test"
    assert by_id(other, ".m.rule.contains_user_name")["pattern"] == "bob"


def test_selected_rules_match_spec_definitions():
    rules = default_push_rules(USER)
    assert by_id(rules, ".m.rule.is_user_mention")["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
    ]
    assert by_id(rules, ".m.rule.is_room_mention") == {
        "rule_id": ".m.rule.is_room_mention",
        "default": True,
        "enabled": True,
        "conditions": [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        "actions": ["notify", {"set_tweak": "highlight"}],
    }
    assert by_id(rules, ".m.rule.tombstone")["conditions"] == [
        {"kind": "event_match", "key": "type", "pattern": "m.room.tombstone"},
        {"kind": "event_match", "key": "state_key", "pattern": ""},
    ]
    assert by_id(rules, ".m.rule.suppress_edits")["conditions"] == [
        {
            "kind": "event_property_is",
            "key": "content.m\\.relates_to.rel_type",
            "value": "m.replace",
        }
    ]
    assert by_id(rules, ".m.rule.call")["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "ring"},
    ]
    assert by_id(rules, ".m.rule.encrypted_room_one_to_one")["conditions"] == [
        {"kind": "room_member_count", "is": "2"},
        {"kind": "event_match", "key": "type", "pattern": "m.room.encrypted"},
    ]
    assert by_id(rules, ".m.rule.message")["actions"] == ["notify"]
    assert by_id(rules, ".m.rule.encrypted")["actions"] == ["notify"]
    for silent in (
        ".m.rule.suppress_notices",
        ".m.rule.member_event",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ):
        assert by_id(rules, silent)["actions"] == []


@pytest.mark.parametrize("legacy", [False, True])
def test_json_serialisable(legacy):
    rules = default_push_rules(USER, legacy_mentions=legacy)
    assert json.loads(json.dumps(rules)) == rules


def test_calls_return_independent_copies():
    a = default_push_rules(USER, legacy_mentions=True)
    b = default_push_rules(USER, legacy_mentions=True)
    assert a == b
    # Mutate everything reachable in `a`; `b` and later calls must be unaffected.
    by_id(a, ".m.rule.master")["enabled"] = True
    by_id(a, ".m.rule.invite_for_me")["actions"][1]["value"] = "changed"
    by_id(a, ".m.rule.is_user_mention")["conditions"][0]["value"] = "@mallory:evil.test"
    by_id(a, ".m.rule.contains_user_name")["actions"].clear()
    a["global"]["underride"].pop()
    a["global"]["room"].append({"rule_id": "!r:example.org"})
    c = default_push_rules(USER, legacy_mentions=True)
    assert b == c
    assert by_id(c, ".m.rule.master")["enabled"] is False
    # Shared action objects are not aliased between rules of one result either.
    assert by_id(a, ".m.rule.room_one_to_one")["actions"][1]["value"] == "default"


@pytest.mark.parametrize("bad", ["", "alice", "alice:example.org", "@alice"])
def test_rejects_malformed_user_id(bad):
    with pytest.raises(ValueError):
        default_push_rules(bad)
