"""A user's push rules: the server defaults merged with their changes.

The served ruleset is, per kind, in the order the spec checks them:
`.m.rule.master` first (it always wins), then the user's own override rules,
then the other default override rules; the user's content rules before the
default ones; the user's room and sender rules; the user's underride rules
before the default ones. Within the user's rules of a kind, the order is the
one they chose with `before`/`after`.

Every change is also written as the `m.push_rules` global account data, which
is how /sync tells clients; an initial sync always carries the ruleset.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from canonicaljson import encode_canonical_json

from homeserver.account_data import AccountDataService
from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from homeserver.push.default_rules import default_push_rules
from homeserver.push.evaluator import COMMON_USER, RULE_KINDS, CompiledRuleset
from homeserver.sync.filter import event_allowed
from homeserver.sync.response import SyncRequest
from storage.events import RoomWriter
from storage.push import PushStore, RelativeRuleNotFoundError, StoredPushRule

# Serve the pre-v1.17 body-matching mention rules, as Synapse does.
LEGACY_MENTIONS: Final = True
PUSH_RULES_TYPE: Final = "m.push_rules"
_CACHE_SIZE: Final = 10_000
# The ruleset cache's name among the caches shared by a deployment.
_RULES_CACHE: Final = "push_rules"
# "dont_notify" and "coalesce" are from older spec versions: accepted, ignored.
_STRING_ACTIONS: Final = frozenset({"notify", "dont_notify", "coalesce"})


def _default_ids(thread_subscriptions: bool) -> dict[str, frozenset[str]]:
    defaults = default_push_rules(
        "@any:any", legacy_mentions=LEGACY_MENTIONS, thread_subscriptions=thread_subscriptions
    )["global"]
    return {kind: frozenset(r["rule_id"] for r in defaults[kind]) for kind in RULE_KINDS}


def _user_rule(rule: StoredPushRule) -> dict[str, Any]:
    """A user's own rule in the served shape of its kind."""
    served: dict[str, Any] = {"rule_id": rule.rule_id, "default": False}
    served["enabled"] = rule.enabled is not False
    if rule.kind in ("override", "underride"):
        served["conditions"] = json.loads(rule.conditions_json or "[]")
    elif rule.kind == "content":
        served["pattern"] = rule.pattern
    served["actions"] = json.loads(rule.actions_json or "[]")
    return served


def merge_rules(
    user_id: str, stored: Sequence[StoredPushRule], *, thread_subscriptions: bool = False
) -> dict[str, Any]:
    """The `global` ruleset a user has: the defaults (with MSC4306's rules when
    `thread_subscriptions`) with their changes."""
    changes = {(r.kind, r.rule_id): r for r in stored if r.is_default}
    own: dict[str, list[StoredPushRule]] = {kind: [] for kind in RULE_KINDS}
    for rule in stored:
        if not rule.is_default and rule.kind in own:
            own[rule.kind].append(rule)
    defaults = default_push_rules(
        user_id, legacy_mentions=LEGACY_MENTIONS, thread_subscriptions=thread_subscriptions
    )["global"]
    merged: dict[str, Any] = {}
    for kind in RULE_KINDS:
        for rule in defaults[kind]:
            change = changes.get((kind, rule["rule_id"]))
            if change is not None:
                if change.enabled is not None:
                    rule["enabled"] = change.enabled
                if change.actions_json is not None:
                    rule["actions"] = json.loads(change.actions_json)
        users = [_user_rule(r) for r in sorted(own[kind], key=lambda r: -r.priority)]
        first = [r for r in defaults[kind] if r["rule_id"] == ".m.rule.master"]
        rest = [r for r in defaults[kind] if r["rule_id"] != ".m.rule.master"]
        merged[kind] = first + users + rest
    return merged


def check_kind(kind: str) -> None:
    if kind not in RULE_KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}")


def check_actions(actions: Any) -> list[Any]:
    """Actions as the spec defines them: 400 for anything else."""
    if not isinstance(actions, list):
        raise bad_json("'actions' must be a list")
    for action in actions:
        if isinstance(action, str) and action in _STRING_ACTIONS:
            continue
        if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            continue
        raise bad_json(f"Unrecognised push rule action: {json.dumps(action)}")
    return actions


def _check_conditions(conditions: Any) -> list[Any]:
    if not isinstance(conditions, list) or not all(
        isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conditions
    ):
        raise bad_json("'conditions' must be a list of objects with a 'kind'")
    return conditions


def _find(ruleset: Mapping[str, Any], kind: str, rule_id: str) -> dict[str, Any]:
    check_kind(kind)
    for rule in ruleset[kind]:
        if rule["rule_id"] == rule_id:
            return rule
    raise not_found("The push rule was not found.")


def _names_room(condition: Any, room_id: str) -> bool:
    """Whether a push condition matches exactly the events of one room."""
    return (
        isinstance(condition, dict)
        and condition.get("kind") == "event_match"
        and condition.get("key") == "room_id"
        and condition.get("pattern") == room_id
    )


def _encode(value: Any) -> str:
    return encode_canonical_json(value).decode()


class PushRulesService:
    """Reads and changes push rules; keeps each user's ruleset cached, compiled."""

    def __init__(
        self,
        store: PushStore,
        account_data: AccountDataService,
        *,
        thread_subscription_rules: bool = False,
    ) -> None:
        self._store = store
        self._account_data = account_data
        # MSC4306's default rules: notifications in threads follow subscriptions.
        self._thread_subscription_rules = thread_subscription_rules
        self._default_ids = _default_ids(thread_subscription_rules)
        # user id -> (served `global` ruleset, compiled ruleset), least recent first.
        self._cache: OrderedDict[str, tuple[dict[str, Any], CompiledRuleset]] = OrderedDict()
        # Counts changes, so that a load that read the rules before a change
        # committed does not put them back into the cache after it.
        self._changes = 0
        self._shared: CacheInvalidations | None = None
        # The default rules, as evaluate_common takes them.
        self._default = CompiledRuleset(
            merge_rules(COMMON_USER, (), thread_subscriptions=thread_subscription_rules)
        )
        self._listeners: list[Callable[[str], None]] = []

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(user_id)` when a user's rules change."""
        self._listeners.append(listener)

    def default_compiled(self) -> CompiledRuleset:
        """The server-default rules of a user who changed none."""
        return self._default

    # --- reading ---------------------------------------------------------------

    async def _load(
        self, user_ids: Sequence[str], writer: RoomWriter | None = None
    ) -> dict[str, tuple[dict[str, Any], CompiledRuleset]]:
        """Cached rulesets of these users; the missing ones in one query."""
        found: dict[str, tuple[dict[str, Any], CompiledRuleset]] = {}
        missing = []
        for user_id in user_ids:
            cached = self._cache.get(user_id)
            if cached is None:
                missing.append(user_id)
            else:
                self._cache.move_to_end(user_id)
                found[user_id] = cached
        if missing:
            changes = self._changes
            conn = writer.conn if writer is not None else None
            stored = await self._store.rules_for_users(missing, conn)
            for user_id in missing:
                ruleset = merge_rules(
                    user_id,
                    stored.get(user_id, ()),
                    thread_subscriptions=self._thread_subscription_rules,
                )
                found[user_id] = (ruleset, CompiledRuleset(ruleset))
                if changes == self._changes:
                    self._cache[user_id] = found[user_id]
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    async def ruleset(self, user_id: str) -> dict[str, Any]:
        """The user's `global` ruleset as served (do not modify it)."""
        return (await self._load([user_id]))[user_id][0]

    async def compiled(
        self, user_ids: Sequence[str], writer: RoomWriter | None = None
    ) -> dict[str, CompiledRuleset]:
        """The compiled rulesets of many users (for evaluating one event);
        `writer`: inside a room writer's transaction, the writer."""
        return {u: pair[1] for u, pair in (await self._load(user_ids, writer)).items()}

    async def rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        return _find(await self.ruleset(user_id), kind, rule_id)

    async def kind_rules(self, user_id: str, kind: str) -> list[dict[str, Any]]:
        check_kind(kind)
        return (await self.ruleset(user_id))[kind]

    # --- changing --------------------------------------------------------------

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: Mapping[str, Any],
        *,
        before: str | None,
        after: str | None,
    ) -> None:
        """Create or replace one of the user's own rules (PUT .../{kind}/{ruleId})."""
        check_kind(kind)
        if rule_id.startswith("."):
            raise invalid_param("Rule ids starting with '.' are reserved for server-default rules")
        if "/" in rule_id or "\\" in rule_id:
            raise invalid_param("Rule ids may not contain slashes or backslashes")
        if not rule_id:
            raise invalid_param("The rule id is empty")
        if "actions" not in body:
            raise missing_param("'actions' is required")
        actions = check_actions(body["actions"])
        conditions = pattern = None
        if kind in ("override", "underride"):
            conditions = _encode(_check_conditions(body.get("conditions", [])))
        elif kind == "content":
            pattern = body.get("pattern")
            if not isinstance(pattern, str):
                raise bad_json("Content rules need a string 'pattern'")
        # Spec: with both, the rule goes next to `before`.
        relative_after = None if before else after
        if rule_id in (before, relative_after):
            raise invalid_param("A rule cannot be placed relative to itself")
        try:
            await self._store.put_rule(
                user_id,
                kind,
                rule_id,
                conditions_json=conditions,
                pattern=pattern,
                actions_json=_encode(actions),
                before=before,
                after=relative_after,
            )
        except RelativeRuleNotFoundError as e:
            raise MatrixError(400, "M_UNKNOWN", f"before/after rule not found: {e}") from None
        await self._changed(user_id)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        check_kind(kind)
        if rule_id in self._default_ids[kind]:
            raise not_found("Server-default rules cannot be deleted")
        if not await self._store.delete_rule(user_id, kind, rule_id):
            raise not_found("The push rule was not found.")
        await self._changed(user_id)

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._set_attribute(user_id, kind, rule_id, enabled=enabled)

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        await self._set_attribute(
            user_id, kind, rule_id, actions_json=_encode(check_actions(actions))
        )

    async def _set_attribute(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        *,
        enabled: bool | None = None,
        actions_json: str | None = None,
    ) -> None:
        check_kind(kind)
        is_default = rule_id in self._default_ids[kind]
        if rule_id.startswith(".") and not is_default:
            raise not_found("The push rule was not found.")
        if not await self._store.set_attribute(
            user_id,
            kind,
            rule_id,
            is_default=is_default,
            enabled=enabled,
            actions_json=actions_json,
        ):
            raise not_found("The push rule was not found.")
        await self._changed(user_id)

    async def copy_room_rules(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """Give the user's rules about `old_room_id` to `new_room_id` (a room
        upgrade, as Synapse does on joining the successor): the room rule
        named after it, and override/underride rules with a condition on its
        id. Rules the user already has for the new room are left alone."""
        stored = (await self._store.rules_for_users([user_id])).get(user_id, [])
        have = {(r.kind, r.rule_id) for r in stored}
        copies = []
        for rule in stored:
            if rule.is_default:
                continue
            if rule.kind == "room" and rule.rule_id == old_room_id:
                copies.append((rule, new_room_id, None))
            elif rule.kind in ("override", "underride") and rule.conditions_json:
                conditions = json.loads(rule.conditions_json)
                if not any(_names_room(c, old_room_id) for c in conditions):
                    continue
                moved = [
                    {**c, "pattern": new_room_id} if _names_room(c, old_room_id) else c
                    for c in conditions
                ]
                copies.append((rule, rule.rule_id.replace(old_room_id, new_room_id), moved))
        copies = [c for c in copies if (c[0].kind, c[1]) not in have]
        for rule, rule_id, conditions in copies:
            await self._store.put_rule(
                user_id,
                rule.kind,
                rule_id,
                conditions_json=_encode(conditions) if conditions is not None else None,
                pattern=rule.pattern,
                actions_json=rule.actions_json or "[]",
                before=None,
                after=None,
            )
        if copies:
            await self._changed(user_id)

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a rule changed through one
        reaches the others' caches (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register(_RULES_CACHE, self._forget, self._forget_all)

    def _forget(self, user_id: str) -> None:
        self._changes += 1
        self._cache.pop(user_id, None)
        for listener in self._listeners:
            listener(user_id)

    def _forget_all(self) -> None:
        self._changes += 1
        self._cache.clear()

    async def _changed(self, user_id: str) -> None:
        """Forget the cached ruleset and tell the user's clients through /sync."""
        if self._shared is not None:
            self._shared.forget(_RULES_CACHE, user_id)
        else:
            self._forget(user_id)
        ruleset = await self.ruleset(user_id)
        await self._account_data.put_unchecked(user_id, "", PUSH_RULES_TYPE, {"global": ruleset})

    # --- /sync -----------------------------------------------------------------

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """An initial (or full-state) sync always carries the current ruleset,
        also for users who never changed a rule."""
        if request.since is not None and not request.full_state:
            return
        if not event_allowed(request.filter.get("account_data", {}), PUSH_RULES_TYPE):
            return
        ruleset = await self.ruleset(request.user_id)
        events = response.setdefault("account_data", {}).setdefault("events", [])
        events[:] = [e for e in events if e.get("type") != PUSH_RULES_TYPE]
        events.append({"type": PUSH_RULES_TYPE, "content": {"global": ruleset}})
