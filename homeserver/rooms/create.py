"""createRoom's rules, without I/O: read the request, then list the room's first events.

The spec fixes the order of events and the presets; Synapse fixes the default
power levels that clients' settings screens are built around. Both live here
so that `RoomService.create_room` only fetches profiles and sends.
"""

from __future__ import annotations

from typing import Any

import attrs

from homeserver.config import RequestLimits
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.identifiers import is_valid_user_id
from homeserver.request_limits import DEFAULT_LIMITS, check_count

StateDraft = tuple[str, str, dict[str, Any]]
"""(type, state_key, content) of a state event to send."""


@attrs.frozen
class Preset:
    """What a createRoom preset implies (the spec's table, with Synapse's power levels)."""

    join_rule: str
    # Synapse sends m.room.guest_access only to allow guests; absent means forbidden.
    guest_can_join: bool
    invite_level: int
    invitees_are_admins: bool


PRESETS = {
    "private_chat": Preset(
        "invite", guest_can_join=True, invite_level=0, invitees_are_admins=False
    ),
    "trusted_private_chat": Preset(
        "invite", guest_can_join=True, invite_level=0, invitees_are_admins=True
    ),
    "public_chat": Preset(
        "public", guest_can_join=False, invite_level=50, invitees_are_admins=False
    ),
}

# Events the default power levels reserve for moderators and admins.
_DEFAULT_EVENT_LEVELS = {
    "m.room.name": 50,
    "m.room.power_levels": 100,
    "m.room.history_visibility": 100,
    "m.room.canonical_alias": 50,
    "m.room.avatar": 50,
    "m.room.tombstone": 100,
    "m.room.server_acl": 100,
    "m.room.encryption": 100,
}


@attrs.frozen
class CreateRoomRequest:
    """A validated createRoom body."""

    room_version: RoomVersion
    public: bool
    preset: Preset
    invites: list[str]
    creation_content: dict[str, Any]
    power_level_override: dict[str, Any]
    # By (type, state_key), in request order; a repeated key keeps its last content.
    initial_state: dict[tuple[str, str], dict[str, Any]]
    name: str | None
    topic: str | None
    alias: str | None
    is_direct: bool


def parse_create_request(
    body: dict[str, Any],
    *,
    server_name: str,
    default_room_version: str,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> CreateRoomRequest:
    """400 with the spec's errcode for anything malformed, and for more
    invites or initial state than `limits` allow (each is an event)."""
    version_id = body.get("room_version", default_room_version)
    if not isinstance(version_id, str):
        # A version is a string even when it looks like a number ("1", not 1).
        raise bad_json("room_version must be a string")
    room_version = KNOWN_ROOM_VERSIONS.get(version_id)
    if room_version is None:
        raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", f"Unknown room version {version_id!r}")
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise bad_json("visibility must be 'public' or 'private'")
    preset_name = body.get("preset") or (
        "public_chat" if visibility == "public" else "private_chat"
    )
    preset = PRESETS.get(preset_name) if isinstance(preset_name, str) else None
    if preset is None:
        raise bad_json(f"Unknown preset {preset_name!r}")
    invites = body.get("invite", [])
    if not isinstance(invites, list) or not all(
        isinstance(i, str) and is_valid_user_id(i) for i in invites
    ):
        raise bad_json("invite must be a list of user ids")
    threepid_invites = body.get("invite_3pid", [])
    invite_count = len(set(invites)) + (
        len(threepid_invites) if isinstance(threepid_invites, list) else 0
    )
    check_count(invite_count, limits.max_invites_per_create_room, "invites")
    raw_initial_state = body.get("initial_state", [])
    if isinstance(raw_initial_state, list):
        check_count(
            len(raw_initial_state), limits.max_initial_state_per_create_room, "initial_state events"
        )
    creation_content = body.get("creation_content", {})
    override = body.get("power_level_content_override", {})
    if not isinstance(creation_content, dict) or not isinstance(override, dict):
        raise bad_json("creation_content and power_level_content_override must be objects")
    for key in ("name", "topic", "room_alias_name"):
        if key in body and not isinstance(body[key], str):
            raise bad_json(f"{key} must be a string")
    is_direct = body.get("is_direct", False)
    if not isinstance(is_direct, bool):
        raise bad_json("is_direct must be true or false")
    alias = None
    if "room_alias_name" in body:
        local = body["room_alias_name"]
        if not local or ":" in local or any(c.isspace() for c in local):
            raise invalid_param("room_alias_name must be a local part, like 'wombat'")
        alias = f"#{local}:{server_name}"
    return CreateRoomRequest(
        room_version=room_version,
        public=visibility == "public",
        preset=preset,
        invites=list(dict.fromkeys(invites)),
        creation_content=creation_content,
        power_level_override=override,
        initial_state=_initial_state(raw_initial_state),
        name=body.get("name"),
        topic=body.get("topic"),
        alias=alias,
        is_direct=is_direct,
    )


def _initial_state(raw: Any) -> dict[tuple[str, str], dict[str, Any]]:
    if not isinstance(raw, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("type"), str)
        and isinstance(s.get("content"), dict)
        and isinstance(s.get("state_key", ""), str)
        for s in raw
    ):
        raise bad_json("initial_state must be a list of {type, state_key, content}")
    if any(s["type"] == "m.room.create" for s in raw):
        raise bad_json("initial_state cannot hold m.room.create; use creation_content")
    return {(s["type"], s.get("state_key", "")): s["content"] for s in raw}


def create_content(req: CreateRoomRequest, creator: str) -> dict[str, Any]:
    """creation_content with the server's keys; trusted invitees become room 12 creators."""
    content = dict(req.creation_content)
    content["room_version"] = req.room_version.identifier
    if not req.room_version.implicit_room_creator:
        content["creator"] = creator
    if req.room_version.privileged_creators and req.preset.invitees_are_admins and req.invites:
        extra = content.get("additional_creators", [])
        if isinstance(extra, list):
            content["additional_creators"] = list(dict.fromkeys([*extra, *req.invites]))
    return content


def default_power_levels(req: CreateRoomRequest, creator: str) -> dict[str, Any]:
    """Synapse's defaults, with the preset's invite level and the request's override.

    From room 12 creators have infinite power and may not be listed in
    `users`, and upgrading (tombstone) must need more than state_default.
    """
    users: dict[str, int] = {}
    events = dict(_DEFAULT_EVENT_LEVELS)
    if req.room_version.privileged_creators:
        events["m.room.tombstone"] = 150
    else:
        users[creator] = 100
        if req.preset.invitees_are_admins:
            users.update(dict.fromkeys(req.invites, 100))
    levels: dict[str, Any] = {
        "users": users,
        "users_default": 0,
        "events": events,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": req.preset.invite_level,
    }
    levels.update(req.power_level_override)
    return levels


def initial_events(
    req: CreateRoomRequest,
    creator: str,
    creator_join: dict[str, Any],
    invite_contents: dict[str, dict[str, Any]],
) -> list[StateDraft]:
    """Every event after m.room.create, in the spec's order.

    The creator's join, power levels, canonical alias, the preset's events,
    initial_state, name and topic, invites. As in Synapse, an initial_state
    event replaces the default event of the same key (power levels included,
    and then the override does not apply).
    """
    initial_state = dict(req.initial_state)
    power_levels = initial_state.pop(("m.room.power_levels", ""), None)
    if power_levels is None:
        power_levels = default_power_levels(req, creator)
    events: list[StateDraft] = [
        ("m.room.member", creator, creator_join),
        ("m.room.power_levels", "", power_levels),
    ]
    implied: list[StateDraft] = []
    if req.alias is not None:
        implied.append(("m.room.canonical_alias", "", {"alias": req.alias}))
    implied.append(("m.room.join_rules", "", {"join_rule": req.preset.join_rule}))
    implied.append(("m.room.history_visibility", "", {"history_visibility": "shared"}))
    if req.preset.guest_can_join:
        implied.append(("m.room.guest_access", "", {"guest_access": "can_join"}))
    events.extend(e for e in implied if (e[0], e[1]) not in initial_state)
    events.extend((type, key, content) for (type, key), content in initial_state.items())
    if req.name is not None:
        events.append(("m.room.name", "", {"name": req.name}))
    if req.topic is not None:
        topic_content = {"topic": req.topic, "m.topic": {"m.text": [{"body": req.topic}]}}
        events.append(("m.room.topic", "", topic_content))
    for invitee, content in invite_contents.items():
        invite = dict(content)
        if req.is_direct:
            invite["is_direct"] = True
        events.append(("m.room.member", invitee, invite))
    return events
