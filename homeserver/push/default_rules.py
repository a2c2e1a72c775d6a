"""The server-default push rules (Matrix client-server spec v1.19, "Predefined Rules").

``default_push_rules(user_id)`` returns the ruleset in the shape of
``GET /_matrix/client/v3/pushrules/``. The rules are kept as module-level data in
spec order; two of them depend on the user, marked with the placeholders
``_USER_ID`` and ``_LOCALPART``, which are filled in while copying, so every call
returns a fresh, independent, JSON-serialisable structure.

Spec v1.17 removed the legacy body-matching mention rules
(``.m.rule.contains_display_name``, ``.m.rule.roomnotif`` and
``.m.rule.contains_user_name``), so v1.19 has no content rules. Synapse still serves
them unless MSC4210 is enabled; pass ``legacy_mentions=True`` to include them at the
positions the v1.16 spec gave them.

Unstable MSC rules (for example Synapse's ``.org.matrix.msc3930.rule.poll_*``) are
deliberately not included, but for the thread subscription rules of MSC4306
(``thread_subscriptions=True``), which Synapse serves when it advertises the MSC.
"""

from __future__ import annotations

from typing import Any, Final


class _Placeholder:
    """Marks a user-dependent value in the rule data; replaced while copying."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_USER_ID: Final = _Placeholder("user_id")
_LOCALPART: Final = _Placeholder("localpart")

_NOTIFY: Final = "notify"
_SOUND_DEFAULT: Final = {"set_tweak": "sound", "value": "default"}
_SOUND_RING: Final = {"set_tweak": "sound", "value": "ring"}
_HIGHLIGHT: Final = {"set_tweak": "highlight"}


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any]) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": True,
        "conditions": conditions,
        "actions": actions,
    }


def _event_match(key: str, pattern: Any) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


# --- override rules, in spec order -------------------------------------------------

_MASTER: Final = {**_rule(".m.rule.master", [], []), "enabled": False}

_SUPPRESS_NOTICES: Final = _rule(
    ".m.rule.suppress_notices",
    [_event_match("content.msgtype", "m.notice")],
    [],
)

_INVITE_FOR_ME: Final = _rule(
    ".m.rule.invite_for_me",
    [
        _event_match("type", "m.room.member"),
        _event_match("content.membership", "invite"),
        _event_match("state_key", _USER_ID),
    ],
    [_NOTIFY, _SOUND_DEFAULT],
)

_MEMBER_EVENT: Final = _rule(
    ".m.rule.member_event",
    [_event_match("type", "m.room.member")],
    [],
)

_IS_USER_MENTION: Final = _rule(
    ".m.rule.is_user_mention",
    [
        {
            "kind": "event_property_contains",
            "key": "content.m\\.mentions.user_ids",
            "value": _USER_ID,
        }
    ],
    [_NOTIFY, _SOUND_DEFAULT, _HIGHLIGHT],
)

_IS_ROOM_MENTION: Final = _rule(
    ".m.rule.is_room_mention",
    [
        {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
        {"kind": "sender_notification_permission", "key": "room"},
    ],
    [_NOTIFY, _HIGHLIGHT],
)

_TOMBSTONE: Final = _rule(
    ".m.rule.tombstone",
    [_event_match("type", "m.room.tombstone"), _event_match("state_key", "")],
    [_NOTIFY, _HIGHLIGHT],
)

_REACTION: Final = _rule(
    ".m.rule.reaction",
    [_event_match("type", "m.reaction")],
    [],
)

_SERVER_ACL: Final = _rule(
    ".m.rule.room.server_acl",
    [_event_match("type", "m.room.server_acl"), _event_match("state_key", "")],
    [],
)

_SUPPRESS_EDITS: Final = _rule(
    ".m.rule.suppress_edits",
    [
        {
            "kind": "event_property_is",
            "key": "content.m\\.relates_to.rel_type",
            "value": "m.replace",
        }
    ],
    [],
)

# --- legacy mention rules (in the spec until v1.16, removed in v1.17) ---------------

_CONTAINS_DISPLAY_NAME: Final = _rule(
    ".m.rule.contains_display_name",
    [{"kind": "contains_display_name"}],
    [_NOTIFY, _SOUND_DEFAULT, _HIGHLIGHT],
)

_ROOMNOTIF: Final = _rule(
    ".m.rule.roomnotif",
    [
        _event_match("content.body", "@room"),
        {"kind": "sender_notification_permission", "key": "room"},
    ],
    [_NOTIFY, _HIGHLIGHT],
)

_CONTAINS_USER_NAME: Final = {
    "rule_id": ".m.rule.contains_user_name",
    "default": True,
    "enabled": True,
    "pattern": _LOCALPART,
    "actions": [_NOTIFY, _SOUND_DEFAULT, _HIGHLIGHT],
}

# --- underride rules, in spec order ------------------------------------------------

_CALL: Final = _rule(
    ".m.rule.call",
    [_event_match("type", "m.call.invite")],
    [_NOTIFY, _SOUND_RING],
)

_ENCRYPTED_ROOM_ONE_TO_ONE: Final = _rule(
    ".m.rule.encrypted_room_one_to_one",
    [{"kind": "room_member_count", "is": "2"}, _event_match("type", "m.room.encrypted")],
    [_NOTIFY, _SOUND_DEFAULT],
)

_ROOM_ONE_TO_ONE: Final = _rule(
    ".m.rule.room_one_to_one",
    [{"kind": "room_member_count", "is": "2"}, _event_match("type", "m.room.message")],
    [_NOTIFY, _SOUND_DEFAULT],
)

_MESSAGE: Final = _rule(
    ".m.rule.message",
    [_event_match("type", "m.room.message")],
    [_NOTIFY],
)

_ENCRYPTED: Final = _rule(
    ".m.rule.encrypted",
    [_event_match("type", "m.room.encrypted")],
    [_NOTIFY],
)

# --- thread subscriptions (MSC4306, unstable names) --------------------------------

# Last of the overrides: messages in threads the user is not subscribed to
# notify only through the mention rules before it.
_UNSUBSCRIBED_THREAD: Final = _rule(
    ".io.element.msc4306.rule.unsubscribed_thread",
    [{"kind": "io.element.msc4306.thread_subscription", "subscribed": False}],
    [],
)

# First of the underrides: every message in a subscribed thread notifies.
_SUBSCRIBED_THREAD: Final = _rule(
    ".io.element.msc4306.rule.subscribed_thread",
    [{"kind": "io.element.msc4306.thread_subscription", "subscribed": True}],
    [_NOTIFY, _SOUND_DEFAULT],
)

# --- the rulesets ------------------------------------------------------------------

_OVERRIDE: Final = (
    _MASTER,
    _SUPPRESS_NOTICES,
    _INVITE_FOR_ME,
    _MEMBER_EVENT,
    _IS_USER_MENTION,
    _IS_ROOM_MENTION,
    _TOMBSTONE,
    _REACTION,
    _SERVER_ACL,
    _SUPPRESS_EDITS,
)

_OVERRIDE_LEGACY: Final = (
    _MASTER,
    _SUPPRESS_NOTICES,
    _INVITE_FOR_ME,
    _MEMBER_EVENT,
    _IS_USER_MENTION,
    _CONTAINS_DISPLAY_NAME,
    _IS_ROOM_MENTION,
    _ROOMNOTIF,
    _TOMBSTONE,
    _REACTION,
    _SERVER_ACL,
    _SUPPRESS_EDITS,
)

_CONTENT: Final = ()
_CONTENT_LEGACY: Final = (_CONTAINS_USER_NAME,)

_UNDERRIDE: Final = (
    _CALL,
    _ENCRYPTED_ROOM_ONE_TO_ONE,
    _ROOM_ONE_TO_ONE,
    _MESSAGE,
    _ENCRYPTED,
)


def _fill(value: Any, user_id: str, localpart: str) -> Any:
    """Deep-copy rule data (dicts, lists, tuples, scalars), filling in placeholders."""
    if isinstance(value, dict):
        return {k: _fill(v, user_id, localpart) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, user_id, localpart) for v in value]
    if value is _USER_ID:
        return user_id
    if value is _LOCALPART:
        return localpart
    return value


def default_push_rules(
    user_id: str, *, legacy_mentions: bool = False, thread_subscriptions: bool = False
) -> dict[str, Any]:
    """The server-default push ruleset for ``user_id``, as served by ``GET /pushrules/``.

    Returns ``{"global": {"override", "content", "room", "sender", "underride"}}``, each a
    list of rules in priority order. The result is a fresh structure on every call.

    ``legacy_mentions`` adds the pre-v1.17 body-matching mention rules, as Synapse does
    by default. ``thread_subscriptions`` adds MSC4306's two rules.
    """
    if not user_id.startswith("@") or ":" not in user_id:
        raise ValueError(f"not a Matrix user ID: {user_id!r}")
    localpart = user_id[1:].split(":", 1)[0]
    override = _OVERRIDE_LEGACY if legacy_mentions else _OVERRIDE
    content = _CONTENT_LEGACY if legacy_mentions else _CONTENT
    underride = _UNDERRIDE
    if thread_subscriptions:
        override = (*override, _UNSUBSCRIBED_THREAD)
        underride = (_SUBSCRIBED_THREAD, *underride)
    return {
        "global": {
            "override": _fill(override, user_id, localpart),
            "content": _fill(content, user_id, localpart),
            "room": [],
            "sender": [],
            "underride": _fill(underride, user_id, localpart),
        }
    }
