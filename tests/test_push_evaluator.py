"""Push rule conditions and rule order, as tables a reader can check by hand."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.push.default_rules import default_push_rules
from homeserver.push.evaluator import (
    CompiledRuleset,
    RoomFacts,
    compile_condition,
    notifies,
    split_key,
)

ALICE = "@alice:example.org"
FACTS = RoomFacts(member_count=3, sender_power_level=0, notification_levels={})


def message(body: Any = "hello", **content: Any) -> dict[str, Any]:
    if body is not None:
        content["body"] = body
    return {
        "type": "m.room.message",
        "room_id": "!room:example.org",
        "sender": "@bob:example.org",
        "event_id": "$event",
        "content": {"msgtype": "m.text", **content},
    }


def matches(condition: dict[str, Any], event: dict[str, Any], **kw: Any) -> bool:
    facts = kw.pop("facts", FACTS)
    return compile_condition(condition)(event, facts, kw.pop("name", None))


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("content.body", ("content", "body")),
        ("content.m\\.relates_to.rel_type", ("content", "m.relates_to", "rel_type")),
        ("content.m\\\\foo", ("content", "m\\foo")),
        ("content.a\\xb", ("content", "a\\xb")),
        ("type", ("type",)),
        ("a..b", ("a", "", "b")),
    ],
)
def test_split_key(key, parts):
    assert split_key(key) == parts


@pytest.mark.parametrize(
    ("key", "pattern", "event", "expected"),
    [
        # Whole-value match, case-insensitive, * and ? globs.
        ("type", "m.room.message", message(), True),
        ("type", "M.ROOM.MESSAGE", message(), True),
        ("type", "m.room.*", message(), True),
        ("type", "m.room.messag?", message(), True),
        ("type", "m.room", message(), False),
        ("type", "m.room.message?", message(), False),
        ("content.msgtype", "m.text", message(), True),
        # The spec's example: content.topic against "lunc?*".
        ("content.topic", "lunc?*", {"content": {"topic": "Lunch plans"}}, True),
        ("content.topic", "lunc?*", {"content": {"topic": "LUNCH"}}, True),
        ("content.topic", "lunc?*", {"content": {"topic": " lunch"}}, False),
        ("content.topic", "lunc?*", {"content": {"topic": "lunc"}}, False),
        ("content.topic", "lunc?*", {"content": {"topic": None}}, False),
        # Absent or not a string: no match, even for "*".
        ("content.nothing", "*", message(), False),
        ("content.count", "*", {"content": {"count": 3}}, False),
        ("content", "*", message(), False),
        # Regex characters in patterns are literal.
        ("content.msgtype", "m.tex.", message(), False),
        ("content.msgtype", "m?text", message(), True),
        ("content.x", "a+b", {"content": {"x": "a+b"}}, True),
        ("content.x", "a+b", {"content": {"x": "aab"}}, False),
        # Escaped dots in keys.
        (
            "content.m\\.relates_to.rel_type",
            "m.thread",
            {"content": {"m.relates_to": {"rel_type": "m.thread"}}},
            True,
        ),
        ("content.m.relates_to.rel_type", "m.thread", {"content": {"m.relates_to": {}}}, False),
        # content.body: any substring between word boundaries.
        ("content.body", "ex*ple", message("An example event."), True),
        ("content.body", "ex*ple", message("exple"), True),
        ("content.body", "ex*ple", message("An exciting triple-whammy"), True),
        ("content.body", "cake", message("I like CAKE!"), True),
        ("content.body", "cake", message("cupcakes"), False),
        ("content.body", "cake", message("cake_shop"), False),
        ("content.body", "cake", message("déjà-cake"), True),
        ("content.body", "@room", message("hey @room"), True),
    ],
)
def test_event_match(key, pattern, event, expected):
    assert matches({"kind": "event_match", "key": key, "pattern": pattern}, event) is expected


@pytest.mark.parametrize(
    ("value", "event_value", "expected"),
    [
        (True, True, True),
        (True, "true", False),
        (True, 1, False),
        (1, True, False),
        (1, 1, True),
        (1, 2, False),
        (None, None, True),
        (None, False, False),
        ("a", "a", True),
        ("a", "A", False),
        ("a", ["a"], False),
        (["a"], ["a"], False),
    ],
)
def test_event_property_is(value, event_value, expected):
    event = {"content": {"m.federate": event_value}}
    condition = {"kind": "event_property_is", "key": "content.m\\.federate", "value": value}
    assert matches(condition, event) is expected


def test_event_property_is_absent_property():
    condition = {"kind": "event_property_is", "key": "content.missing", "value": None}
    assert matches(condition, message()) is False


@pytest.mark.parametrize(
    ("value", "array", "expected"),
    [
        ("#myroom:example.com", ["#somewhere:example.org", "#myroom:example.com"], True),
        (":example.com", ["#myroom:example.com"], False),
        (1, [True, 1], True),
        (True, [1], False),
        (None, [None], True),
        ("a", [["a"], {"a": 1}], False),
        ("a", "a", False),
        ("a", None, False),
    ],
)
def test_event_property_contains(value, array, expected):
    event = {"content": {"alt_aliases": array}}
    condition = {"kind": "event_property_contains", "key": "content.alt_aliases", "value": value}
    assert matches(condition, event) is expected


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("Alice", "hi Alice!", True),
        ("Alice", "hi alice", True),
        ("Alice", "Alice", True),
        ("Alice", "Alicea", False),
        ("Alice", "MalicE", False),
        ("Al.ce", "Alice", False),
        ("Al.ce", "ping Al.ce", True),
        ("Bob (work)", "ask Bob (work) now", True),
        (None, "None", False),
        ("", "anything", False),
        ("Alice", None, False),
    ],
)
def test_contains_display_name(name, body, expected):
    event = message(body)
    assert matches({"kind": "contains_display_name"}, event, name=name) is expected


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        (">3", 3, False),
        ("<=3", 3, True),
        ("<=3", 4, False),
        (">=3", 3, True),
        (">=3", 2, False),
        ("=2", 2, False),
        ("two", 2, False),
        ("", 0, False),
        (2, 2, False),
    ],
)
def test_room_member_count(spec, count, expected):
    facts = RoomFacts(member_count=count, sender_power_level=0)
    condition = {"kind": "room_member_count", "is": spec}
    assert matches(condition, message(), facts=facts) is expected


@pytest.mark.parametrize(
    ("sender_level", "levels", "key", "expected"),
    [
        (50, {}, "room", True),
        (49, {}, "room", False),
        (10, {"room": 10}, "room", True),
        (9, {"room": 10}, "room", False),
        (float("inf"), {"room": 100}, "room", True),
        (0, {"room": 0}, "room", True),
        (0, {}, "other", False),
        (100, {}, None, False),
    ],
)
def test_sender_notification_permission(sender_level, levels, key, expected):
    facts = RoomFacts(member_count=2, sender_power_level=sender_level, notification_levels=levels)
    condition = {"kind": "sender_notification_permission", "key": key}
    assert matches(condition, message(), facts=facts) is expected


@pytest.mark.parametrize(
    "condition",
    [
        {"kind": "unknown_kind"},
        {"kind": "event_match", "key": "type"},
        {"kind": "event_match", "pattern": "*"},
        {"kind": "event_property_is", "key": "content.x", "value": {"a": 1}},
        {"no": "kind"},
        "event_match",
    ],
)
def test_unknown_or_malformed_conditions_never_match(condition):
    assert matches(condition, message()) is False


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (["notify"], (True, False)),
        (["notify", {"set_tweak": "highlight"}], (True, True)),
        (["notify", {"set_tweak": "highlight", "value": True}], (True, True)),
        (["notify", {"set_tweak": "highlight", "value": False}], (True, False)),
        ([{"set_tweak": "highlight"}], (False, False)),
        ([], (False, False)),
        (None, (False, False)),
    ],
)
def test_notifies(actions, expected):
    assert notifies(actions) == expected


# --- whole rulesets ------------------------------------------------------------


def defaults() -> dict[str, Any]:
    return default_push_rules(ALICE, legacy_mentions=True)["global"]


def outcome(ruleset, event, facts=FACTS, name="Alice") -> tuple[bool, bool]:
    rule = CompiledRuleset(ruleset).match(event, facts, name)
    return (rule.notify, rule.highlight) if rule is not None else (False, False)


ONE_TO_ONE = RoomFacts(member_count=2, sender_power_level=0)
ADMIN_SENDER = RoomFacts(member_count=5, sender_power_level=100)


@pytest.mark.parametrize(
    ("event", "facts", "expected"),
    [
        (message("just chatting"), FACTS, (True, False)),
        (message("just chatting"), ONE_TO_ONE, (True, False)),
        (message("hi Alice"), FACTS, (True, True)),
        # Intentional mentions replace the body rules.
        (message("hi Alice", **{"m.mentions": {}}), FACTS, (True, False)),
        (message("hey", **{"m.mentions": {"user_ids": [ALICE]}}), FACTS, (True, True)),
        (message("hey", **{"m.mentions": {"room": True}}), FACTS, (True, False)),
        (message("hey", **{"m.mentions": {"room": True}}), ADMIN_SENDER, (True, True)),
        (message("@room wake up"), ADMIN_SENDER, (True, True)),
        (message("@room wake up"), FACTS, (True, False)),
        # Legacy user name rule (content kind).
        (message("ping alice"), FACTS, (True, True)),
        (
            {**message("notice"), "content": {"msgtype": "m.notice", "body": "x"}},
            FACTS,
            (False, False),
        ),
        ({"type": "m.reaction", "content": {}}, FACTS, (False, False)),
        (
            {"type": "m.room.member", "state_key": ALICE, "content": {"membership": "invite"}},
            FACTS,
            (True, False),
        ),
        (
            {"type": "m.room.member", "state_key": "@c:x", "content": {"membership": "join"}},
            FACTS,
            (False, False),
        ),
        ({"type": "m.room.tombstone", "state_key": "", "content": {}}, FACTS, (True, True)),
        ({"type": "m.call.invite", "content": {}}, FACTS, (True, False)),
        ({"type": "m.room.encrypted", "content": {}}, ONE_TO_ONE, (True, False)),
        (
            {"type": "m.room.topic", "state_key": "", "content": {"topic": "x"}},
            FACTS,
            (False, False),
        ),
        (
            message("an edit", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
            FACTS,
            (False, False),
        ),
    ],
)
def test_default_rules(event, facts, expected):
    assert outcome(defaults(), event, facts) == expected


def test_master_rule_silences_everything_when_enabled():
    rules = defaults()
    rules["override"][0]["enabled"] = True
    assert outcome(rules, message("hi Alice")) == (False, False)


def test_disabled_rule_is_skipped():
    rules = defaults()
    for rule in rules["underride"]:
        if rule["rule_id"] == ".m.rule.message":
            rule["enabled"] = False
    assert outcome(rules, message("plain")) == (False, False)
    # The display name rule still applies.
    assert outcome(rules, message("hi Alice")) == (True, True)


def test_first_matching_rule_wins_in_kind_order():
    rules = defaults()
    rules["room"] = [
        {"rule_id": "!room:example.org", "default": False, "enabled": True, "actions": []}
    ]
    rules["sender"] = [
        {"rule_id": "@bob:example.org", "default": False, "enabled": True, "actions": ["notify"]}
    ]
    # The room rule comes before the sender rule and silences the room...
    assert outcome(rules, message("plain")) == (False, False)
    # ...but override rules come first: a mention still highlights.
    assert outcome(rules, message("hi Alice")) == (True, True)
    # Another room: the sender rule applies.
    other = {**message("plain"), "room_id": "!other:example.org"}
    assert outcome(rules, other) == (True, False)


def test_content_rule_and_legacy_actions_ignored():
    rules = defaults()
    rules["content"].insert(
        0,
        {
            "rule_id": "cake",
            "default": False,
            "enabled": True,
            "pattern": "cake*lie",
            "actions": ["notify", "coalesce", {"set_tweak": "highlight"}],
        },
    )
    assert outcome(rules, message("the CAKE is a lie")) == (True, True)
    rule = CompiledRuleset(rules).match(message("cake lie"), FACTS, None)
    assert rule.rule_id == "cake"
    assert rule.actions == ("notify", {"set_tweak": "highlight"})
    rules["content"][0]["actions"] = ["dont_notify"]
    assert outcome(rules, message("cake lie")) == (False, False)


def test_outcomes_shared_between_users_stay_per_user():
    bob = "@bob:example.org"
    rulesets = {
        ALICE: CompiledRuleset(defaults()),
        bob: CompiledRuleset(default_push_rules(bob, legacy_mentions=True)["global"]),
    }
    names = {ALICE: "Alice", bob: "Bob"}

    def for_everyone(event):
        shared: dict = {}
        found = {}
        for user, ruleset in rulesets.items():
            rule = ruleset.match(event, FACTS, names[user], shared)
            found[user] = (rule.rule_id, rule.highlight) if rule else None
        return found

    mention = message("hey", **{"m.mentions": {"user_ids": [bob]}})
    assert for_everyone(mention) == {
        ALICE: (".m.rule.message", False),
        bob: (".m.rule.is_user_mention", True),
    }
    assert for_everyone(message("hi Alice")) == {
        ALICE: (".m.rule.contains_display_name", True),
        bob: (".m.rule.message", False),
    }
