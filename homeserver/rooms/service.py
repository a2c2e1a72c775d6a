"""Creating rooms, sending events and reading room state, for local users."""

from __future__ import annotations

from typing import Any

from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.identifiers import is_valid_user_id
from homeserver.profile import ProfileService
from homeserver.requester import Requester
from homeserver.rooms.pipeline import EventPipeline
from storage.events import EventStore, StoredEvent
from storage.rooms import AliasInUseError, RoomStore

_PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "public_chat": {"join_rule": "public", "history": "shared", "guest": "forbidden"},
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


class RoomService:
    def __init__(
        self,
        pipeline: EventPipeline,
        events: EventStore,
        rooms: RoomStore,
        profiles: ProfileService,
        *,
        server_name: str,
        default_room_version: str,
    ) -> None:
        self._pipeline = pipeline
        self._events = events
        self._rooms = rooms
        self._profiles = profiles
        self._server_name = server_name
        self._default_room_version = default_room_version

    async def member_content(self, user_id: str, membership: str) -> dict[str, Any]:
        """A join's content carries the joiner's current display name and avatar."""
        content: dict[str, Any] = {"membership": membership}
        try:
            profile = await self._profiles.get_profile(user_id)
        except MatrixError:
            return content
        for key in ("displayname", "avatar_url"):
            if key in profile:
                content[key] = profile[key]
        return content

    async def create_room(self, requester: Requester, body: dict[str, Any]) -> str:
        """The spec's createRoom, event by event; returns the room id."""
        user_id = requester.user_id
        version_id = body.get("room_version", self._default_room_version)
        room_version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
        if room_version is None:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Unknown room version {version_id!r}"
            )
        visibility = body.get("visibility", "private")
        if visibility not in ("public", "private"):
            raise bad_json("visibility must be 'public' or 'private'")
        preset_name = body.get("preset") or (
            "public_chat" if visibility == "public" else "private_chat"
        )
        preset = _PRESETS.get(preset_name)
        if preset is None:
            raise bad_json(f"Unknown preset {preset_name!r}")
        invites = body.get("invite", [])
        if not isinstance(invites, list) or not all(
            isinstance(i, str) and is_valid_user_id(i) for i in invites
        ):
            raise bad_json("invite must be a list of user ids")
        creation_content = body.get("creation_content", {})
        override = body.get("power_level_content_override", {})
        initial_state = body.get("initial_state", [])
        if not isinstance(creation_content, dict) or not isinstance(override, dict):
            raise bad_json("creation_content and power_level_content_override must be objects")
        if not isinstance(initial_state, list) or not all(
            isinstance(s, dict)
            and isinstance(s.get("type"), str)
            and isinstance(s.get("content"), dict)
            and isinstance(s.get("state_key", ""), str)
            for s in initial_state
        ):
            raise bad_json("initial_state must be a list of {type, state_key, content}")
        for key in ("name", "topic", "room_alias_name"):
            if key in body and not isinstance(body[key], str):
                raise bad_json(f"{key} must be a string")
        if "is_direct" in body and not isinstance(body["is_direct"], bool):
            raise bad_json("is_direct must be true or false")
        alias = None
        if "room_alias_name" in body:
            local = body["room_alias_name"]
            if not local or ":" in local or any(c.isspace() for c in local):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid room_alias_name")
            alias = f"#{local}:{self._server_name}"
            if await self._rooms.room_for_alias(alias) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")

        trusted = preset_name == "trusted_private_chat"
        create_content = dict(creation_content)
        create_content["room_version"] = room_version.identifier
        if not room_version.implicit_room_creator:
            create_content["creator"] = user_id
        if room_version.privileged_creators and trusted and invites:
            extra = create_content.get("additional_creators", [])
            create_content["additional_creators"] = [
                *extra,
                *(i for i in invites if i not in extra),
            ]
        create = await self._pipeline.create_room(room_version, user_id, create_content)
        room_id = create.event.room_id

        async def send(type: str, content: dict[str, Any], state_key: str = "") -> None:
            await self._pipeline.send(
                room_id, type=type, sender=user_id, content=content, state_key=state_key
            )

        await send("m.room.member", await self.member_content(user_id, "join"), user_id)
        power_users: dict[str, int] = {}
        if not room_version.privileged_creators:
            power_users[user_id] = 100
            if trusted:
                power_users.update(dict.fromkeys(invites, 100))
        power_levels: dict[str, Any] = {
            "users": power_users,
            "users_default": 0,
            "events": dict(_DEFAULT_EVENT_LEVELS),
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0,
            "notifications": {"room": 50},
        }
        power_levels.update(override)
        await send("m.room.power_levels", power_levels)
        if alias is not None:
            await send("m.room.canonical_alias", {"alias": alias})
        await send("m.room.join_rules", {"join_rule": preset["join_rule"]})
        await send("m.room.history_visibility", {"history_visibility": preset["history"]})
        if room_version.knock_join_rule or preset["guest"]:
            await send("m.room.guest_access", {"guest_access": preset["guest"]})
        for state in initial_state:
            await send(state["type"], state["content"], state.get("state_key", ""))
        if "name" in body:
            await send("m.room.name", {"name": body["name"]})
        if "topic" in body:
            await send(
                "m.room.topic",
                {
                    "topic": body["topic"],
                    "m.topic": [{"mimetype": "text/plain", "body": body["topic"]}],
                },
            )
        if alias is not None:
            try:
                await self._rooms.create_alias(alias, room_id, user_id)
            except AliasInUseError:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken") from None
        if visibility == "public":
            await self._rooms.set_public(room_id, True)
        for invitee in invites:
            content = await self.member_content(invitee, "invite")
            content.pop("membership")
            invite = {"membership": "invite", **content}
            if body.get("is_direct"):
                invite["is_direct"] = True
            await send("m.room.member", invite, invitee)
        return room_id

    async def send_event(
        self,
        requester: Requester,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
        redacts: str | None = None,
    ) -> StoredEvent:
        if event_type == "m.room.create":
            raise forbidden("A room has one create event, made by createRoom")
        return await self._pipeline.send(
            room_id,
            type=event_type,
            sender=requester.user_id,
            content=content,
            state_key=state_key,
            redacts=redacts,
            txn=(requester.device_id, txn_id) if txn_id is not None else None,
        )

    async def require_joined(self, user_id: str, room_id: str) -> None:
        """403 unless the user is in the room now (404 for unknown rooms)."""
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership == "join":
            return
        if not await self._rooms.exists(room_id):
            raise not_found("Unknown room")
        raise forbidden("You are not in this room")

    async def current_state(self, requester: Requester, room_id: str) -> list[StoredEvent]:
        await self.require_joined(requester.user_id, room_id)
        ids = await self._events.current_state_ids(room_id)
        found = await self._events.get_events(ids.values())
        return [found[i] for i in ids.values() if i in found]

    async def state_event(
        self, requester: Requester, room_id: str, event_type: str, state_key: str
    ) -> StoredEvent:
        await self.require_joined(requester.user_id, room_id)
        event_id = await self._events.current_state_event_id(room_id, event_type, state_key)
        found = await self._events.get_events([event_id]) if event_id else {}
        if not event_id or event_id not in found:
            raise not_found("Event not found")
        return found[event_id]

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id = await self._rooms.room_for_alias(room_id_or_alias)
            if room_id is None:
                raise not_found("Room alias not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", "Expected a room id or alias")
        return room_id_or_alias

    async def joined_rooms(self, user_id: str) -> list[str]:
        return await self._rooms.rooms_for_user(user_id)

    async def forget(self, requester: Requester, room_id: str) -> None:
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        if membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
        if membership is None:
            raise not_found("You were never in this room")
        await self._rooms.forget(requester.user_id, room_id)

    async def set_membership(
        self,
        requester: Requester,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> StoredEvent:
        """Invite, join, leave, kick, ban, unban or knock: one member event.

        The auth rules decide who may do what; this adds the profile for joins
        and the reason.
        """
        if not is_valid_user_id(target):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user id")
        if membership in ("join", "knock"):
            content = await self.member_content(target, membership)
        else:
            content = {"membership": membership}
        if membership == "invite":
            profile = await self.member_content(target, "invite")
            content.update(profile)
        if reason is not None:
            content["reason"] = reason
        if extra:
            content.update(extra)
        if not await self._rooms.exists(room_id):
            raise not_found("Unknown room")
        return await self._pipeline.send(
            room_id,
            type="m.room.member",
            sender=requester.user_id,
            content=content,
            state_key=target,
        )
