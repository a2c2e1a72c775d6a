"""Push rule evaluation: which actions a user's rules give an event.

Pure and synchronous. A ruleset is compiled once (globs become regexes,
dotted keys become paths) and then evaluated for many events; everything the
conditions need about the room arrives in a `RoomFacts` value that the caller
loads once per event for all of the room's users.

Over 600 lines because the three ways of evaluating (one ruleset, many users
through templates, the common outcome of the members nothing singles out)
share the compiled conditions and templates, which stay private here.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

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
    # Of the users evaluated, those subscribed to the event's thread (MSC4306);
    # None when the event is not in a thread.
    thread_subscribers: frozenset[str] | None = None


Condition = Callable[[Mapping[str, Any], RoomFacts, str | None], bool]
"""(event as decoded JSON, room facts, the user's display name in the room) -> matches.
The thread subscription conditions get the user's id instead (see `_all_hold`)."""

# MSC4306's condition, under its unstable name (as Synapse and Element X use it).
THREAD_SUBSCRIPTION: Final = "io.element.msc4306.thread_subscription"


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


def _thread_condition(subscribed: bool) -> Condition:
    """MSC4306: the event is in a thread, and the user is (or is not) subscribed to it."""

    def condition(_event: Mapping[str, Any], facts: RoomFacts, user_id: str | None) -> bool:
        subscribers = facts.thread_subscribers
        return subscribers is not None and (user_id in subscribers) is subscribed

    return condition


_SUBSCRIBED_THREAD: Final = _thread_condition(True)
_UNSUBSCRIBED_THREAD: Final = _thread_condition(False)
# Conditions on the user's own id: never shared between users.
_USER_CONDITIONS: Final = frozenset({_SUBSCRIBED_THREAD, _UNSUBSCRIBED_THREAD})


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
    if kind == THREAD_SUBSCRIPTION and isinstance(condition.get("subscribed"), bool):
        return _SUBSCRIBED_THREAD if condition["subscribed"] else _UNSUBSCRIBED_THREAD
    return _never


def _conditions_of(kind: str, rule: Mapping[str, Any]) -> tuple[Condition, ...]:
    """The conditions of a rule as served: explicit for override and underride,
    implied by the pattern or the rule id for the other kinds."""
    if kind in ("content", "room", "sender"):
        return (compile_condition(_implied(kind, rule)),)
    return tuple(compile_condition(c) for c in rule.get("conditions", ()))


def _implied(kind: str, rule: Mapping[str, Any]) -> dict[str, Any]:
    """The condition that a content, room or sender rule stands for."""
    if kind == "content":
        return {"kind": "event_match", "key": "content.body", "pattern": rule.get("pattern")}
    key = "room_id" if kind == "room" else "sender"
    return {"kind": "event_property_is", "key": key, "value": rule["rule_id"]}


@attrs.frozen(eq=False)
class CompiledRule:
    """One enabled rule, compiled. Users whose rules are the same share the
    object, so that its outcome for an event is computed once for all."""

    rule_id: str
    conditions: tuple[Condition, ...]
    actions: tuple[Any, ...]
    notify: bool
    highlight: bool
    # The outcome depends on the user's display name or id: it cannot be shared.
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
        per_user=any(c is _contains_display_name or c in _USER_CONDITIONS for c in compiled),
        legacy_mention=rule["rule_id"] in _LEGACY_MENTION_RULES,
    )


RULE_KINDS: Final = ("override", "content", "room", "sender", "underride")


class CompiledRuleset:
    """A user's push rules (the `global` ruleset as served) ready to evaluate."""

    def __init__(self, ruleset: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self._sources = tuple(
            (kind, json.dumps({k: v for k, v in rule.items() if k != "enabled"}, sort_keys=True))
            for kind in RULE_KINDS
            for rule in ruleset.get(kind, ())
            if rule.get("enabled", True)
        )
        self._rules = tuple(_compile_rule(kind, rule_json) for kind, rule_json in self._sources)
        self._template: tuple[str, _Template] | None = None

    def template(self, user_id: str) -> _Template:
        """These rules with `user_id` and its localpart taken out (see
        `evaluate_many`); users with the same rules but for their own ids
        share the template."""
        if self._template is None or self._template[0] != user_id:
            self._template = (user_id, _template_of(self._sources, user_id))
        return self._template[1]

    def match(
        self,
        event: Mapping[str, Any],
        facts: RoomFacts,
        display_name: str | None,
        shared: dict[Any, bool] | None = None,
        user_id: str = "",
    ) -> CompiledRule | None:
        """The first enabled rule that matches the event, or None.

        `shared` memoises the outcomes of rules and conditions that do not
        depend on the user: pass the same dict for every user evaluated for
        one event. `user_id` is whose rules these are (for the thread
        subscription conditions).
        """
        if shared is None:
            shared = {}
        content = event.get("content")
        has_mentions = isinstance(content, dict) and "m.mentions" in content
        for rule in self._rules:
            if has_mentions and rule.legacy_mention:
                continue
            if rule.per_user:
                matched = _all_hold(
                    rule.conditions, event, facts, display_name, shared, user_id=user_id
                )
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
    *,
    user_id: str = "",
) -> bool:
    for condition in conditions:
        if condition is _contains_display_name:
            holds = condition(event, facts, display_name)
        elif condition in _USER_CONDITIONS:
            holds = condition(event, facts, user_id)
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


# --- one event, many users ---------------------------------------------------
#
# Most users of a room have the default rules, which differ only by the user's
# own id and localpart (invite_for_me, is_user_mention, contains_user_name).
# A template is a ruleset with those values replaced by slots: evaluating an
# event then checks each rule's other conditions once for all the users of a
# template, and per user only the slot conditions (a set lookup or a substring
# test), and only for the rules that the shared conditions did not rule out.


@attrs.frozen(eq=False)
class RuleOutcome:
    """The rule that matched an event for a user: one object per template rule,
    shared by every user it matched."""

    rule_id: str
    actions: tuple[Any, ...]
    notify: bool
    highlight: bool


@attrs.frozen(eq=False)
class _Bound:
    """A condition on the user's own id or localpart, or their display name."""

    # "event_match", "event_property_is", "event_property_contains",
    # "contains_display_name" or THREAD_SUBSCRIPTION (these two have no path or slot).
    kind: str
    path: tuple[str, ...]
    # "user_id" or "localpart".
    slot: str
    # An event_match on content.body (word matching, `search`).
    body: bool
    # THREAD_SUBSCRIPTION's `subscribed`.
    subscribed: bool = False


@attrs.frozen(eq=False)
class _TemplateRule:
    outcome: RuleOutcome
    shared: tuple[Condition, ...]
    bound: tuple[_Bound, ...]
    legacy_mention: bool


@attrs.frozen(eq=False)
class _Template:
    rules: tuple[_TemplateRule, ...]


_SLOT_KINDS: Final = {
    "event_match": "pattern",
    "event_property_is": "value",
    "event_property_contains": "value",
}


def _slotted(condition: Any, slots: Mapping[str, str]) -> list[Any]:
    """A condition as a template entry: ["bound", kind, key, slot] when its
    value is one of the user's own (`slots`: value -> slot name), ["name"] for
    contains_display_name, ["thread", subscribed] for a thread subscription
    condition, else ["plain", the condition's canonical JSON]."""
    if isinstance(condition, Mapping):
        kind = condition.get("kind")
        if kind == "contains_display_name":
            return ["name"]
        if kind == THREAD_SUBSCRIPTION and isinstance(condition.get("subscribed"), bool):
            return ["thread", condition["subscribed"]]
        field = _SLOT_KINDS.get(kind) if isinstance(kind, str) else None
        key, value = condition.get("key"), condition.get(field) if field else None
        if isinstance(key, str) and isinstance(value, str) and value in slots:
            return ["bound", kind, key, slots[value]]
        try:
            return ["plain", json.dumps(condition, sort_keys=True)]
        except (TypeError, ValueError):
            pass
    return ["plain", None]


def _template_of(sources: Sequence[tuple[str, str]], user_id: str) -> _Template:
    localpart = user_id[1:].split(":", 1)[0]
    slots = {user_id: "user_id", localpart: "localpart"}
    entries = []
    for kind, rule_json in sources:
        rule = json.loads(rule_json)
        if kind in ("content", "room", "sender"):
            conditions: Any = [_implied(kind, rule)]
        else:
            conditions = rule.get("conditions", ())
        entries.append(
            [rule["rule_id"], rule.get("actions", []), [_slotted(c, slots) for c in conditions]]
        )
    return _compile_template(json.dumps(entries, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _compile_template(template_json: str) -> _Template:
    rules = []
    for rule_id, raw_actions, conditions in json.loads(template_json):
        actions = tuple(a for a in raw_actions if not _is_legacy_action(a))
        shared: list[Condition] = []
        bound: list[_Bound] = []
        for entry in conditions:
            if entry[0] == "name":
                bound.append(_Bound("contains_display_name", (), "", False))
            elif entry[0] == "thread":
                bound.append(_Bound(THREAD_SUBSCRIPTION, (), "", False, subscribed=entry[1]))
            elif entry[0] == "bound":
                _, kind, key, slot = entry
                bound.append(_Bound(kind, split_key(key), slot, key == "content.body"))
            else:
                shared.append(_compile_json(entry[1]) if entry[1] is not None else _never)
        rules.append(
            _TemplateRule(
                RuleOutcome(rule_id, actions, *notifies(actions)),
                tuple(shared),
                tuple(bound),
                rule_id in _LEGACY_MENTION_RULES,
            )
        )
    return _Template(tuple(rules))


class Recipient(NamedTuple):
    user_id: str
    display_name: str | None
    rules: CompiledRuleset


class _Who(NamedTuple):
    """A recipient's own values, as the slot conditions compare them."""

    user_id: str
    localpart: str
    display_name: str | None

    def slot(self, name: str) -> str:
        return self.user_id if name == "user_id" else self.localpart


class _EventView:
    """Values of one event that the slot conditions read for many users."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = event
        self._values: dict[tuple[str, ...], Any] = {}

    def value(self, path: tuple[str, ...]) -> Any:
        found = self._values.get(path, self)
        if found is self:
            found = self._values[path] = _lookup(self._event, path)
        return found


def _may_occur(needle: str, text: str, lowered: str | None) -> bool:
    """False only if `needle` cannot match in `text` ignoring case (`lowered`:
    text.lower() if `text` is ASCII, else None): a cheap test before the
    regex. Only exact for ASCII (re's IGNORECASE also folds some other
    letters onto ASCII ones), so anything else passes."""
    if lowered is None or not needle.isascii() or "*" in needle or "?" in needle:
        return True
    return needle.lower() in lowered


def _holding(bound: _Bound, view: _EventView, users: list[_Who], facts: RoomFacts) -> list[_Who]:
    """The users for whom `bound` holds."""
    if bound.kind == THREAD_SUBSCRIPTION:
        subscribers = facts.thread_subscribers
        if subscribers is None:
            return []
        return [u for u in users if (u.user_id in subscribers) is bound.subscribed]
    if bound.kind == "contains_display_name":
        body = view.value(("content", "body"))
        if not isinstance(body, str):
            return []
        lowered = body.lower() if body.isascii() else None
        return [
            u
            for u in users
            if u.display_name
            and _may_occur(u.display_name, body, lowered)
            and _name_regex(u.display_name).search(body) is not None
        ]
    value = view.value(bound.path)
    if bound.kind == "event_property_contains":
        if not isinstance(value, list):
            return []
        strings = {v for v in value if isinstance(v, str)}
        return [u for u in users if u.slot(bound.slot) in strings] if strings else []
    if not isinstance(value, str):
        return []
    if bound.kind == "event_property_is":
        return [u for u in users if u.slot(bound.slot) == value]
    lowered = value.lower() if value.isascii() else None
    found = []
    for u in users:
        wanted = u.slot(bound.slot)
        if not _may_occur(wanted, value, lowered):
            continue
        regex = glob_regex(wanted, bound.body)
        if (regex.search if bound.body else regex.fullmatch)(value) is not None:
            found.append(u)
    return found


def evaluate_many(
    event: Mapping[str, Any], facts: RoomFacts, recipients: Sequence[Recipient]
) -> dict[str, RuleOutcome]:
    """{user id: the first of their enabled rules that matches the event} for
    every recipient some rule matched: the same outcome as each user's
    `CompiledRuleset.match`, at the cost of evaluating each distinct template
    once, plus the slot conditions of the rules that its shared conditions
    leave in play, for the users still without a match."""
    groups: dict[_Template, list[_Who]] = {}
    for user_id, display_name, rules in recipients:
        groups.setdefault(rules.template(user_id), []).append(
            _Who(user_id, user_id[1:].split(":", 1)[0], display_name)
        )
    content = event.get("content")
    has_mentions = isinstance(content, dict) and "m.mentions" in content
    view = _EventView(event)
    shared: dict[Any, bool] = {}
    found: dict[str, RuleOutcome] = {}
    for template, remaining in groups.items():
        for rule in template.rules:
            if has_mentions and rule.legacy_mention:
                continue
            if not _all_hold(rule.shared, event, facts, None, shared):
                continue
            matched = remaining
            for bound in rule.bound:
                matched = _holding(bound, view, matched, facts)
                if not matched:
                    break
            if not matched:
                continue
            for who in matched:
                found[who.user_id] = rule.outcome
            if matched is remaining:
                break
            remaining = [u for u in remaining if u.user_id not in found]
            if not remaining:
                break
    return found


# A user id that no condition of the default rules names, nor any body holds.
COMMON_USER: Final = "@\x00:\x00"


def evaluate_common(
    event: Mapping[str, Any], facts: RoomFacts, rules: CompiledRuleset
) -> RuleOutcome | None:
    """The outcome of `rules` (the server defaults of COMMON_USER) for a member whom no
    condition on a user's own id, localpart or display name holds for, and
    who is not subscribed to the event's thread: the outcome of every such
    member with the default rules, computed once (push/notifications.py
    finds the members something does single out)."""
    content = event.get("content")
    has_mentions = isinstance(content, dict) and "m.mentions" in content
    shared: dict[Any, bool] = {}
    for rule in rules.template(COMMON_USER).rules:
        if has_mentions and rule.legacy_mention:
            continue
        if not _all_hold(rule.shared, event, facts, None, shared):
            continue
        # Only "not subscribed to the thread" holds for such a member.
        if all(
            b.kind == THREAD_SUBSCRIPTION
            and not b.subscribed
            and facts.thread_subscribers is not None
            for b in rule.bound
        ):
            return rule.outcome
    return None
