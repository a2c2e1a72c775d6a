"""The redaction algorithm: which parts of an event survive a redaction.

Redaction is more than a moderation tool: signatures and reference hashes
(event ids) cover the redacted form of an event, so that a redacted copy still
verifies. Getting a kept key wrong for any room version therefore breaks
federation for that version, which is why each rule below names its version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.events.room_versions import RoomVersion

# Top-level keys kept by every room version.
_TOP_LEVEL_KEYS = frozenset(
    {
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
        "auth_events",
        "origin_server_ts",
    }
)
# Rooms 1-10 also keep these; room 11 stopped protecting them.
_PRE_V11_TOP_LEVEL_KEYS = _TOP_LEVEL_KEYS | {"origin", "membership", "prev_state"}

_POWER_LEVELS_KEYS = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


def redact(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return the redacted form of `pdu` under `room_version`'s rules.

    The result is a new top-level dict with a new `content` dict; values below
    that are shared with `pdu`, so copy before mutating them. `unsigned` is not
    in the spec's list of kept keys and is dropped: a server that wants to show
    `redacted_because` to clients adds it afterwards.
    """
    keep = _TOP_LEVEL_KEYS if room_version.updated_redaction_rules else _PRE_V11_TOP_LEVEL_KEYS
    redacted = {key: value for key, value in pdu.items() if key in keep}
    content = pdu.get("content")
    redacted["content"] = _redact_content(
        pdu.get("type"), content if isinstance(content, Mapping) else {}, room_version
    )
    return redacted


def _redact_content(
    event_type: object, content: Mapping[str, Any], room_version: RoomVersion
) -> dict[str, Any]:
    if event_type == "m.room.create" and room_version.updated_redaction_rules:
        return dict(content)
    kept = _kept_content_keys(event_type, room_version)
    redacted = {key: content[key] for key in kept if key in content}
    if event_type == "m.room.member" and room_version.updated_redaction_rules:
        # Room 11 keeps the part of a third-party invite that auth rules check.
        invite = content.get("third_party_invite")
        if isinstance(invite, Mapping) and "signed" in invite:
            redacted["third_party_invite"] = {"signed": invite["signed"]}
    return redacted


def _kept_content_keys(event_type: object, room_version: RoomVersion) -> tuple[str, ...]:
    match event_type:
        case "m.room.member":
            if room_version.restricted_join_rule_fix:  # room 9+
                return ("membership", "join_authorised_via_users_server")
            return ("membership",)
        case "m.room.create":
            return ("creator",)
        case "m.room.join_rules":
            if room_version.restricted_join_rule:  # room 8+
                return ("join_rule", "allow")
            return ("join_rule",)
        case "m.room.power_levels":
            if room_version.updated_redaction_rules:  # room 11+
                return (*_POWER_LEVELS_KEYS, "invite")
            return _POWER_LEVELS_KEYS
        case "m.room.aliases":
            # Rooms 1-5 only: room 6 stopped protecting aliases, in the same
            # change that ended their special authorisation rule.
            if room_version.special_case_aliases_auth:
                return ("aliases",)
            return ()
        case "m.room.history_visibility":
            return ("history_visibility",)
        case "m.room.redaction":
            if room_version.updated_redaction_rules:  # room 11+
                return ("redacts",)
            return ()
        case _:
            return ()
