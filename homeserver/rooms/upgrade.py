"""Room upgrades: replace a room by a new room of another version.

The steps are the spec's (module "Room Upgrades", server behaviour), with the
details where it leaves a choice taken from Synapse, which clients know:
bans and space children are carried over too, the upgrader is lifted to the
power needed to set the new room up and put back afterwards, and the old
room's events_default and invite are raised to max(50, users_default + 1).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import Any

import attrs

from homeserver.accounts.suspension import refuse_if_suspended
from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.events.auth import get_power_level, get_required_level, parse_level
from homeserver.events.event import Event, StateKey
from homeserver.events.redaction import redact
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.identifiers import is_valid_user_id
from homeserver.requester import Requester
from homeserver.rooms.directory import CANONICAL_ALIAS, DirectoryService
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.service import RoomService
from storage.directory import DirectoryStore
from storage.events import EventStore

logger = logging.getLogger(__name__)

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
TOMBSTONE = "m.room.tombstone"
GUEST_ACCESS = "m.room.guest_access"
SPACE_CHILD = "m.space.child"

# State copied to the new room, in this order (the spec's recommended list).
COPIED_STATE = (
    "m.room.join_rules",
    "m.room.history_visibility",
    GUEST_ACCESS,
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.encryption",
    "m.room.server_acl",
)
# The level at or above which the old room's sending and inviting are put.
RESTRICTED_LEVEL = 50
_LEVEL_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "kick",
    "redact",
    "invite",
)


def _creators(create: Event) -> set[str]:
    """The creators a room 12+ create event names: its sender and additional_creators."""
    extra = create.content.get("additional_creators")
    return (
        {create.sender, *(u for u in extra if isinstance(u, str))}
        if isinstance(extra, list)
        else {create.sender}
    )


def _int_levels(version: RoomVersion, content: Mapping[str, Any]) -> dict[str, Any]:
    """Power levels content with every level a plain integer.

    Rooms before 10 accept levels written as strings, which rooms 10 and
    later refuse; values that are no level at all are dropped.
    """
    out: dict[str, Any] = {}
    for key, value in content.items():
        if key in _LEVEL_KEYS:
            level = parse_level(version, value)
            if level is not None:
                out[key] = level
        elif key in ("users", "events", "notifications"):
            if isinstance(value, Mapping):
                levels = {k: parse_level(version, v) for k, v in value.items()}
                out[key] = {k: v for k, v in levels.items() if v is not None}
        else:
            out[key] = value
    return out


def _setup_level(content: Mapping[str, Any]) -> int:
    """The level that lets the upgrader send every state event the new room needs."""
    events = content.get("events", {})
    return max(
        content.get("state_default", 50),
        content.get("ban", 50),
        *events.values(),
        0,
    )


class RoomUpgrader:
    def __init__(
        self,
        pipeline: EventPipeline,
        events: EventStore,
        rooms: RoomService,
        directory: DirectoryService,
        directory_store: DirectoryStore,
    ) -> None:
        self._pipeline = pipeline
        self._events = events
        self._rooms = rooms
        self._directory = directory
        self._store = directory_store
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def upgrade(
        self,
        requester: Requester,
        room_id: str,
        new_version: str,
        additional_creators: list[str] | None = None,
    ) -> str:
        """Upgrade the room; returns the replacement room's id."""
        refuse_if_suspended(requester, "Upgrading rooms")
        version = KNOWN_ROOM_VERSIONS.get(new_version)
        if version is None:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Unknown room version {new_version!r}"
            )
        if additional_creators is not None and not all(
            isinstance(u, str) and is_valid_user_id(u) for u in additional_creators
        ):
            raise bad_json("additional_creators must be a list of user ids")
        # One upgrade of a room at a time: a retried request must not make two rooms.
        async with self._lock(room_id):
            state = await self._old_state(room_id, requester.user_id)
            self._check_may_upgrade(requester.user_id, state)
            new_room_id = await self._replace(
                requester.user_id, room_id, version, state, additional_creators or []
            )
            await self._move_aliases(requester.user_id, room_id, new_room_id, state)
            if await self._store.is_public(room_id):
                await self._store.set_public(room_id, False)
                await self._store.set_public(new_room_id, True)
            await self._restrict_old_room(requester.user_id, room_id)
            return new_room_id

    async def _replace(
        self,
        user_id: str,
        room_id: str,
        version: RoomVersion,
        state: Mapping[StateKey, Event],
        additional_creators: list[str],
    ) -> str:
        """Create the new room and tombstone the old one; the new room's id.

        As in Synapse, the new room's create event names the tombstone as
        the predecessor's last event: the tombstone is built first, on the
        new room's id chosen beforehand, and stored once the new room is set
        up. Rooms whose id is their create event's hash cannot know it before
        the create event exists; they name the old room's last event instead.
        """

        def content(new_room_id: str) -> dict[str, Any]:
            return {"body": "This room has been replaced", "replacement_room": new_room_id}

        if version.room_id_from_create_event:
            new_room_id = await self._create_replacement(
                user_id, room_id, version, state, additional_creators, None
            )
            await self._pipeline.send(
                room_id, type=TOMBSTONE, sender=user_id, content=content(new_room_id), state_key=""
            )
            return new_room_id
        new_room_id = self._pipeline.new_room_id()
        built = await self._pipeline.build_local(
            room_id, type=TOMBSTONE, sender=user_id, content=content(new_room_id), state_key=""
        )
        await self._create_replacement(
            user_id, room_id, version, state, additional_creators, (new_room_id, built.event_id)
        )
        await self._pipeline.accept_remote(built)
        return new_room_id

    async def _old_state(self, room_id: str, user_id: str) -> dict[StateKey, Event]:
        """The old room's state that the upgrade reads or copies, redactions applied,
        with the upgrader's member event."""
        ids = await self._events.current_state_ids(room_id)
        if not ids:
            raise not_found("Unknown room")
        wanted = {
            k: i
            for k, i in ids.items()
            if k[0] in (*COPIED_STATE, SPACE_CHILD, CANONICAL_ALIAS)
            or k in (CREATE_KEY, POWER_LEVELS_KEY, ("m.room.member", user_id))
        }
        found = await self._events.get_events(wanted.values())
        redacted = await self._events.redactions_of(wanted.values())
        state: dict[StateKey, Event] = {}
        for key, event_id in wanted.items():
            stored = found.get(event_id)
            if stored is None:
                continue
            event = stored.event
            if event_id in redacted:
                content = redact(dict(event.pdu), event.room_version)["content"]
                event = _with_content(event, content)
            state[key] = event
        return state

    def _check_may_upgrade(self, user_id: str, state: Mapping[StateKey, Event]) -> None:
        member = state.get(("m.room.member", user_id))
        if member is None or member.content.get("membership") != "join":
            raise forbidden("You are not in this room")
        create = state[CREATE_KEY]
        version = create.room_version
        power = get_power_level(version, user_id, state)
        if power < get_required_level(version, TOMBSTONE, "", state):
            raise forbidden("You don't have permission to upgrade the room")

    async def _create_replacement(
        self,
        user_id: str,
        old_room_id: str,
        version: RoomVersion,
        state: Mapping[StateKey, Event],
        additional_creators: list[str],
        chosen: tuple[str, str] | None,
    ) -> str:
        """The new room, set up; `chosen` is its id and the tombstone's, when known."""
        old_create = state[CREATE_KEY]
        predecessor: dict[str, Any] = {"room_id": old_room_id}
        last = chosen[1] if chosen is not None else await self._store.latest_event_id(old_room_id)
        if last is not None:
            predecessor["event_id"] = last
        create: dict[str, Any] = {"room_version": version.identifier, "predecessor": predecessor}
        if not version.implicit_room_creator:
            create["creator"] = user_id
        for key in ("type", "m.federate"):
            if key in old_create.content:
                create[key] = old_create.content[key]
        new_creators = {user_id}
        if version.privileged_creators and additional_creators:
            create["additional_creators"] = additional_creators
            new_creators.update(additional_creators)
        new = await self._pipeline.create_room(
            version, user_id, create, chosen[0] if chosen is not None else None
        )
        new_room_id = new.event.room_id

        async def send(type: str, content: Mapping[str, Any], state_key: str = "") -> None:
            await self._pipeline.send(
                new_room_id, type=type, sender=user_id, content=content, state_key=state_key
            )

        await send("m.room.member", await self._rooms.member_content(user_id, "join"), user_id)
        levels, setup = self._new_power_levels(user_id, version, state, new_creators)
        await send("m.room.power_levels", setup)
        for event_type in COPIED_STATE:
            event = state.get((event_type, ""))
            if event is None and event_type == GUEST_ACCESS:
                # Synapse sets the new room up with the private_chat preset,
                # whose guest access stays when the old room had none.
                await send(GUEST_ACCESS, {"guest_access": "can_join"})
            if event is not None:
                content = dict(event.content)
                if event_type == "m.room.join_rules":
                    content = _retarget_allow(content, old_room_id, new_room_id)
                await send(event_type, content)
        for (event_type, state_key), event in sorted(state.items()):
            if event_type == SPACE_CHILD and event.content:
                await send(SPACE_CHILD, dict(event.content), state_key)
        for banned, _ in await self._store.members_with(old_room_id, "ban"):
            if banned not in new_creators:
                await send("m.room.member", {"membership": "ban"}, banned)
        if setup != levels:
            await send("m.room.power_levels", levels)
        return new_room_id

    def _new_power_levels(
        self,
        user_id: str,
        version: RoomVersion,
        state: Mapping[StateKey, Event],
        new_creators: set[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The new room's power levels, and the ones to send while setting it up.

        Creators of a room 12+ hold unlimited power and may not be listed in
        `users`; going back to an older version, the old room's creators get
        100 so that somebody still runs the room.
        """
        old_create = state[CREATE_KEY]
        old_version = old_create.room_version
        old = state.get(POWER_LEVELS_KEY)
        levels = _int_levels(old_version, old.content if old is not None else {})
        users = dict(levels.get("users", {}))
        if version.privileged_creators:
            for creator in new_creators:
                users.pop(creator, None)
        elif old_version.privileged_creators:
            for creator in _creators(old_create):
                users[creator] = max(users.get(creator, 0), 100)
        levels["users"] = users
        if version.privileged_creators:
            return levels, levels
        needed = _setup_level(levels)
        if users.get(user_id, levels.get("users_default", 0)) >= needed:
            return levels, levels
        return levels, {**levels, "users": {**users, user_id: needed}}

    async def _move_aliases(
        self, user_id: str, old_room_id: str, new_room_id: str, state: Mapping[StateKey, Event]
    ) -> None:
        """Point local aliases at the new room, and move them between canonical alias events."""
        await self._store.move_aliases(old_room_id, new_room_id)
        event = state.get((CANONICAL_ALIAS, ""))
        if event is None:
            return
        old_content = dict(event.content)
        new_content: dict[str, Any] = {}
        alias = old_content.get("alias")
        if isinstance(alias, str) and self._directory.is_local_alias(alias):
            new_content["alias"] = old_content.pop("alias")
        alt = old_content.get("alt_aliases")
        if isinstance(alt, list):
            local = [a for a in alt if isinstance(a, str) and self._directory.is_local_alias(a)]
            if local:
                new_content["alt_aliases"] = local
                rest = [a for a in alt if a not in local]
                if rest:
                    old_content["alt_aliases"] = rest
                else:
                    del old_content["alt_aliases"]
        if not new_content:
            return
        for room_id, content in ((old_room_id, old_content), (new_room_id, new_content)):
            try:
                await self._pipeline.send(
                    room_id, type=CANONICAL_ALIAS, sender=user_id, content=content, state_key=""
                )
            except MatrixError as e:
                logger.info("could not move canonical alias into %s: %s", room_id, e.message)

    async def _restrict_old_room(self, user_id: str, room_id: str) -> None:
        """Raise events_default and invite in the old room, if the upgrader may."""
        ids = await self._store.state_ids(room_id, [POWER_LEVELS_KEY])
        found = await self._events.get_events(ids.values())
        stored = found.get(ids.get(POWER_LEVELS_KEY, ""))
        if stored is None:
            return
        current = stored.event
        version = current.room_version
        content = dict(current.content)
        users_default = parse_level(version, content.get("users_default", 0)) or 0
        restricted = max(RESTRICTED_LEVEL, users_default + 1)
        changed = False
        for key in ("events_default", "invite"):
            level = parse_level(version, content.get(key, 0))
            if level is None or level < restricted:
                content[key] = restricted
                changed = True
        if not changed:
            return
        try:
            await self._pipeline.send(
                room_id,
                type="m.room.power_levels",
                sender=user_id,
                content=content,
                state_key="",
            )
        except MatrixError as e:
            logger.info("could not restrict the power levels of %s: %s", room_id, e.message)


def _retarget_allow(content: dict[str, Any], old_room_id: str, new_room_id: str) -> dict[str, Any]:
    """A restricted room that admitted members of itself now admits members of its successor."""
    allow = content.get("allow")
    if not isinstance(allow, list):
        return content
    content["allow"] = [
        {**rule, "room_id": new_room_id}
        if isinstance(rule, dict) and rule.get("room_id") == old_room_id
        else rule
        for rule in allow
    ]
    return content


def _with_content(event: Event, content: dict[str, Any]) -> Event:
    return attrs.evolve(event, content=content)
