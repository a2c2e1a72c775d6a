"""evaluate_many (one event, a room's users at once) gives each user exactly
what their own ruleset's `match` gives, whatever shares a template."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from homeserver.push.default_rules import default_push_rules
from homeserver.push.evaluator import CompiledRuleset, Recipient, RoomFacts, evaluate_many

SERVER = "example.org"
FACTS = RoomFacts(member_count=5, sender_power_level=0)
ADMIN = RoomFacts(member_count=5, sender_power_level=100)
ONE_TO_ONE = RoomFacts(member_count=2, sender_power_level=0)


def defaults(user_id: str) -> dict[str, Any]:
    return default_push_rules(user_id, legacy_mentions=True)["global"]


def own_rule(kind: str, rule_id: str, actions: list[Any], **fields: Any) -> dict[str, Any]:
    return {"rule_id": rule_id, "default": False, "enabled": True, "actions": actions, **fields}


def users() -> list[tuple[str, str | None, dict[str, Any]]]:
    """(user id, display name, ruleset): defaults, and a few who changed theirs."""
    found = []
    for i in range(1, 6):
        user = f"@user{i}:{SERVER}"
        found.append((user, f"User {i}" if i % 2 else None, defaults(user)))
    # Mutes the room.
    muted = defaults("@muted:example.org")
    muted["room"] = [own_rule("room", "!room:example.org", [])]
    found.append(("@muted:example.org", "Muted", muted))
    # Highlights on a keyword and on anything from one sender.
    keen = defaults("@keen:example.org")
    keen["content"].insert(
        0, own_rule("content", "cake", ["notify", {"set_tweak": "highlight"}], pattern="cake*")
    )
    keen["sender"] = [own_rule("sender", "@boss:example.org", ["notify", {"set_tweak": "sound"}])]
    found.append(("@keen:example.org", "Keen", keen))
    # An override naming themselves and their display name rule disabled.
    self_named = defaults("@self:example.org")
    self_named["override"].insert(
        1,
        own_rule(
            "override",
            "me",
            ["notify", {"set_tweak": "highlight", "value": False}],
            conditions=[{"kind": "event_match", "key": "content.topic", "pattern": "@self:*"}],
        ),
    )
    for rule in self_named["content"]:
        rule["enabled"] = False
    found.append(("@self:example.org", "Self", self_named))
    # The master rule on.
    silent = defaults("@silent:example.org")
    silent["override"][0]["enabled"] = True
    found.append(("@silent:example.org", None, silent))
    # A localpart that equals a default rule's pattern, and a non-ASCII name.
    odd = defaults("@m.notice:example.org")
    found.append(("@m.notice:example.org", "Ünïcode Nàme", odd))
    return found


def message(body: Any, sender: str = "@other:example.org", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!room:example.org",
        "sender": sender,
        "event_id": "$e",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


EVENTS = [
    message("just chatting"),
    message("hi User 1, how are you"),
    message("hi user3"),
    message("user3x is not a word match"),
    message("ping USER2!"),
    message("the cake is a lie"),
    message("hey", **{"m.mentions": {"user_ids": ["@user2:example.org", 7]}}),
    message("hi User 1", **{"m.mentions": {}}),
    message("@room everyone", **{"m.mentions": {"room": True}}),
    message("@room everyone"),
    message("from the boss", sender="@boss:example.org"),
    message("m.notice in the body"),
    message("ünïcode nàme is here"),
    message(12),
    {**message("x"), "content": {"msgtype": "m.notice", "body": "a notice"}},
    {
        "type": "m.room.member",
        "state_key": "@user4:example.org",
        "sender": "@other:example.org",
        "room_id": "!room:example.org",
        "content": {"membership": "invite"},
    },
    {
        "type": "m.room.topic",
        "state_key": "",
        "sender": "@other:example.org",
        "room_id": "!room:example.org",
        "content": {"topic": "@self:example.org rules"},
    },
    {"type": "m.room.encrypted", "sender": "@x:y", "room_id": "!r:y", "content": {}},
    {"type": "m.room.tombstone", "state_key": "", "sender": "@x:y", "content": {}},
]


@pytest.mark.parametrize("facts", [FACTS, ADMIN, ONE_TO_ONE])
@pytest.mark.parametrize("event", EVENTS)
def test_same_outcome_as_each_users_own_match(event, facts):
    everyone = users()
    compiled = {u: CompiledRuleset(rules) for u, _, rules in everyone}
    expected = {}
    for user_id, name, _ in everyone:
        rule = compiled[user_id].match(copy.deepcopy(event), facts, name)
        if rule is not None:
            expected[user_id] = (rule.rule_id, rule.actions, rule.notify, rule.highlight)
    found = evaluate_many(
        event, facts, [Recipient(u, name, compiled[u]) for u, name, _ in everyone]
    )
    got = {u: (o.rule_id, o.actions, o.notify, o.highlight) for u, o in found.items()}
    assert got == expected


def test_users_with_default_rules_share_one_template():
    a = CompiledRuleset(defaults("@a:example.org"))
    b = CompiledRuleset(defaults("@bb:example.org"))
    assert a.template("@a:example.org") is b.template("@bb:example.org")
    muted = defaults("@c:example.org")
    muted["room"] = [own_rule("room", "!room:example.org", [])]
    assert CompiledRuleset(muted).template("@c:example.org") is not a.template("@a:example.org")
