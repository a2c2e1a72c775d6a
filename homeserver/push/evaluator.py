"""Push rule evaluation: which actions a user's rules give an event.

Pure and synchronous. A ruleset is compiled once (globs become regexes,
dotted keys become paths) and then evaluated for many events; everything the
conditions need about the room arrives in a `RoomFacts` value that the caller
loads once per event for all of the room's users.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

Level = int | float

# Actions from older spec versions that must be ignored.
_LEGACY_ACTIONS: Final = frozenset({"dont_notify", "coalesce"})
# The body-matching mention rules that intentional mentions replace: like
# Synapse, they are skipped for events that carry `m.mentions`.
_LEGACY_MENTION_RULES: Final = frozenset(
    {".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"}
)
# The spec's default for a `notifications` level missing from power levels.
_DEFAULT_NOTIFICATION_LEVEL: Final = 50
_MEMBER_COUNT: Final = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")
# A word boundary is the start or end of the value or any character outside these.
_WORD = "A-Za-z0-9_"
_MISSING: Final = object()


@attrs.frozen
class RoomFacts:
    """What conditions need to know about the room when the event arrived."""

    member_count: int
    sender_power_level: Level
    # The room's `notifications` levels (power levels content), as integers.
    notification_levels: Mapping[str, int] = attrs.field(factory=dict)


Condition = Callable[[Mapping[str, Any], RoomFacts, str | None], bool]
"""(event as decoded JSON, room facts, the user's display name in the room) -> matches."""


def split_key(key: str) -> tuple[str, ...]:
    """A dot-separated property path as its components.

    `\\.` is a literal dot and `\\\\` a literal backslash; any other backslash
    stays as it is (the spec's appendix on dot-separated property paths).
    """
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def _lookup(event: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for part in path:
        if not isinstance(value, dict):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str, words: bool) -> re.Pattern[str]:
    """A glob (`*` any run, `?` one character) as a case-insensitive regex.

    With `words`, the match may be any substring that starts and ends at a
    word boundary (how patterns apply to `content.body`); otherwise it must be
    the whole value.
    """
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        body = f"(?<![{_WORD}])(?:{body})(?![{_WORD}])"
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _same_value(a: Any, b: Any) -> bool:
    """Exact equality of non-compound JSON values: no casts, `true` is not `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if a is None or b is None:
        return a is b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


def _is_legacy_action(action: Any) -> bool:
    return isinstance(action, str) and action in _LEGACY_ACTIONS


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | bool)


def _never(_event: Mapping[str, Any], _facts: RoomFacts, _name: str | None) -> bool:
    return False


def _event_match(key: Any, pattern: Any) -> Condition:
    if not isinstance(key, str) or not isinstance(pattern, str):
        return _never
    path = split_key(key)
    regex = glob_regex(pattern, key == "content.body")
    find = regex.search if key == "content.body" else regex.fullmatch

    def condition(event: Mapping[str, Any], _facts: RoomFacts, _name: str | None) -> bool:
        value = _lookup(event, path)
        return isinstance(value, str) and find(value) is not None

    return condition


def _property_is(key: Any, expected: Any) -> Condition:
    if not isinstance(key, str) or not _is_scalar(expected):
        return _never
    path = split_key(key)

    def condition(event: Mapping[str, Any], _facts: RoomFacts, _name: str | None) -> bool:
        return _same_value(_lookup(event, path), expected)

    return condition


def _property_contains(key: Any, expected: Any) -> Condition:
    if not isinstance(key, str) or not _is_scalar(expected):
        return _never
    path = split_key(key)

    def condition(event: Mapping[str, Any], _facts: RoomFacts, _name: str | None) -> bool:
        value = _lookup(event, path)
        return isinstance(value, list) and any(_same_value(v, expected) for v in value)

    return condition


@functools.lru_cache(maxsize=4096)
def _name_regex(display_name: str) -> re.Pattern[str]:
    return re.compile(f"(?<![{_WORD}]){re.escape(display_name)}(?![{_WORD}])", re.IGNORECASE)


def _contains_display_name(
    event: Mapping[str, Any], _facts: RoomFacts, display_name: str | None
) -> bool:
    if not display_name:
        return False
    body = _lookup(event, ("content", "body"))
    return isinstance(body, str) and _name_regex(display_name).search(body) is not None


_COMPARISONS: Final[Mapping[str, Callable[[int, int], bool]]] = {
    "==": int.__eq__,
    "<": int.__lt__,
    ">": int.__gt__,
    "<=": int.__le__,
    ">=": int.__ge__,
}


def _member_count(spec: Any) -> Condition:
    match = _MEMBER_COUNT.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        return _never
    compare = _COMPARISONS[match.group(1) or "=="]
    number = int(match.group(2))

    def condition(_event: Mapping[str, Any], facts: RoomFacts, _name: str | None) -> bool:
        return compare(facts.member_count, number)

    return condition


def _notification_permission(key: Any) -> Condition:
    if not isinstance(key, str):
        return _never

    def condition(_event: Mapping[str, Any], facts: RoomFacts, _name: str | None) -> bool:
        required = facts.notification_levels.get(key, _DEFAULT_NOTIFICATION_LEVEL)
        return facts.sender_power_level >= required

    return condition


def compile_condition(condition: Any) -> Condition:
    """A condition as a function; unknown or malformed ones never match.

    Equal conditions compile to the same function (whoever's rule they are
    in), which lets one event's evaluation for many users share outcomes.
    """
    if not isinstance(condition, Mapping):
        return _never
    try:
        return _compile_json(json.dumps(condition, sort_keys=True))
    except (TypeError, ValueError):
        return _never


@functools.lru_cache(maxsize=8192)
def _compile_json(condition_json: str) -> Condition:
    condition = json.loads(condition_json)
    kind = condition.get("kind")
    if kind == "event_match":
        return _event_match(condition.get("key"), condition.get("pattern"))
    if kind == "event_property_is":
        return _property_is(condition.get("key"), condition.get("value"))
    if kind == "event_property_contains":
        return _property_contains(condition.get("key"), condition.get("value"))
    if kind == "contains_display_name":
        return _contains_display_name
    if kind == "room_member_count":
        return _member_count(condition.get("is"))
    if kind == "sender_notification_permission":
        return _notification_permission(condition.get("key"))
    return _never


def _conditions_of(kind: str, rule: Mapping[str, Any]) -> tuple[Condition, ...]:
    """The conditions of a rule as served: explicit for override and underride,
    implied by the pattern or the rule id for the other kinds."""
    if kind == "content":
        implied: Any = {
            "kind": "event_match",
            "key": "content.body",
            "pattern": rule.get("pattern"),
        }
    elif kind == "room":
        implied = {"kind": "event_property_is", "key": "room_id", "value": rule["rule_id"]}
    elif kind == "sender":
        implied = {"kind": "event_property_is", "key": "sender", "value": rule["rule_id"]}
    else:
        return tuple(compile_condition(c) for c in rule.get("conditions", ()))
    return (compile_condition(implied),)


@attrs.frozen(eq=False)
class CompiledRule:
    """One enabled rule, compiled. Users whose rules are the same share the
    object, so that its outcome for an event is computed once for all."""

    rule_id: str
    conditions: tuple[Condition, ...]
    actions: tuple[Any, ...]
    notify: bool
    highlight: bool
    # The outcome depends on the user's display name: it cannot be shared.
    per_user: bool
    # A body-matching mention rule, skipped for events with m.mentions.
    legacy_mention: bool


@functools.lru_cache(maxsize=8192)
def _compile_rule(kind: str, rule_json: str) -> CompiledRule:
    rule = json.loads(rule_json)
    actions = tuple(a for a in rule.get("actions", ()) if not _is_legacy_action(a))
    notify, highlight = notifies(actions)
    compiled = _conditions_of(kind, rule)
    return CompiledRule(
        rule_id=rule["rule_id"],
        conditions=compiled,
        actions=actions,
        notify=notify,
        highlight=highlight,
        per_user=_contains_display_name in compiled,
        legacy_mention=rule["rule_id"] in _LEGACY_MENTION_RULES,
    )


RULE_KINDS: Final = ("override", "content", "room", "sender", "underride")


class CompiledRuleset:
    """A user's push rules (the `global` ruleset as served) ready to evaluate."""

    def __init__(self, ruleset: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self._rules = tuple(
            _compile_rule(
                kind,
                json.dumps({k: v for k, v in rule.items() if k != "enabled"}, sort_keys=True),
            )
            for kind in RULE_KINDS
            for rule in ruleset.get(kind, ())
            if rule.get("enabled", True)
        )

    def match(
        self,
        event: Mapping[str, Any],
        facts: RoomFacts,
        display_name: str | None,
        shared: dict[Any, bool] | None = None,
    ) -> CompiledRule | None:
        """The first enabled rule that matches the event, or None.

        `shared` memoises the outcomes of rules and conditions that do not
        depend on the user: pass the same dict for every user evaluated for
        one event.
        """
        if shared is None:
            shared = {}
        content = event.get("content")
        has_mentions = isinstance(content, dict) and "m.mentions" in content
        for rule in self._rules:
            if has_mentions and rule.legacy_mention:
                continue
            if rule.per_user:
                matched = _all_hold(rule.conditions, event, facts, display_name, shared)
            else:
                found = shared.get(rule)
                if found is None:
                    found = shared[rule] = _all_hold(rule.conditions, event, facts, None, shared)
                matched = found
            if matched:
                return rule
        return None


def _all_hold(
    conditions: tuple[Condition, ...],
    event: Mapping[str, Any],
    facts: RoomFacts,
    display_name: str | None,
    shared: dict[Any, bool],
) -> bool:
    for condition in conditions:
        if condition is _contains_display_name:
            holds = condition(event, facts, display_name)
        else:
            found = shared.get(condition)
            if found is None:
                found = shared[condition] = condition(event, facts, None)
            holds = found
        if not holds:
            return False
    return True


def notifies(actions: Sequence[Any] | None) -> tuple[bool, bool]:
    """(notify, highlight) for a rule's actions.

    A highlight tweak without a value means true; no tweak means false.
    """
    if not actions or "notify" not in actions:
        return False, False
    highlight = any(
        isinstance(a, Mapping)
        and a.get("set_tweak") == "highlight"
        and a.get("value", True) is True
        for a in actions
    )
    return True, highlight
