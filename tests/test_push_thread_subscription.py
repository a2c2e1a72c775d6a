"""The thread subscription push condition (MSC4306) in the pure evaluator:
the one-user and many-users paths agree, for events in and out of threads."""

from __future__ import annotations

from homeserver.push.default_rules import default_push_rules
from homeserver.push.evaluator import CompiledRuleset, Recipient, RoomFacts, evaluate_many

ALICE = "@alice:test"
BOB = "@bob:test"
IN_THREAD = {
    "type": "m.room.message",
    "sender": "@carol:test",
    "content": {
        "msgtype": "m.text",
        "body": "reply",
        "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
    },
}


def ruleset(user_id: str) -> CompiledRuleset:
    return CompiledRuleset(
        default_push_rules(user_id, legacy_mentions=True, thread_subscriptions=True)["global"]
    )


def outcomes(facts: RoomFacts) -> dict[str, str]:
    found = evaluate_many(
        IN_THREAD,
        facts,
        [Recipient(ALICE, None, ruleset(ALICE)), Recipient(BOB, None, ruleset(BOB))],
    )
    return {user: outcome.rule_id for user, outcome in found.items()}


def test_subscribed_and_unsubscribed_users_of_one_event() -> None:
    facts = RoomFacts(member_count=5, sender_power_level=0, thread_subscribers=frozenset({BOB}))
    assert outcomes(facts) == {
        ALICE: ".io.element.msc4306.rule.unsubscribed_thread",
        BOB: ".io.element.msc4306.rule.subscribed_thread",
    }
    # The one-user path says the same.
    for user in (ALICE, BOB):
        rule = ruleset(user).match(IN_THREAD, facts, None, user_id=user)
        assert rule is not None and rule.rule_id == outcomes(facts)[user]


def test_outside_threads_the_condition_never_holds() -> None:
    facts = RoomFacts(member_count=5, sender_power_level=0)
    assert outcomes(facts) == {ALICE: ".m.rule.message", BOB: ".m.rule.message"}
    assert ruleset(BOB).match(IN_THREAD, facts, None, user_id=BOB).rule_id == ".m.rule.message"


def test_malformed_condition_never_matches() -> None:
    rules = CompiledRuleset(
        {
            "override": [
                {
                    "rule_id": "mine",
                    "conditions": [
                        {"kind": "io.element.msc4306.thread_subscription", "subscribed": "yes"}
                    ],
                    "actions": ["notify"],
                }
            ]
        }
    )
    facts = RoomFacts(member_count=5, sender_power_level=0, thread_subscribers=frozenset({BOB}))
    assert rules.match(IN_THREAD, facts, None, user_id=BOB) is None
    assert evaluate_many(IN_THREAD, facts, [Recipient(BOB, None, rules)]) == {}
