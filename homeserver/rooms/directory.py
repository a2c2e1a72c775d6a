"""Room aliases and the published room directory, for local users.

Who may do what follows Synapse, which clients are written against: anyone in
the room may add an alias; an alias may be removed by whoever created it or by
a room moderator (power to send m.room.canonical_alias); publishing a room
needs that same power.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from homeserver.appservice.aliases import AppServiceAliases
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events.auth import get_power_level, get_required_level
from homeserver.events.event import Event, StateKey
from homeserver.events.topic import plain_topic
from homeserver.requester import Requester
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.remote import RemoteQueries
from storage.directory import (
    DirectoryCursor,
    DirectoryFilter,
    DirectoryStore,
    RoomSummaryRow,
)
from storage.events import EventStore
from storage.rooms import AliasInUseError, RoomStore

logger = logging.getLogger(__name__)

CANONICAL_ALIAS = "m.room.canonical_alias"
DEFAULT_DIRECTORY_LIMIT = 100
MAX_DIRECTORY_LIMIT = 1000
_MAX_ALIAS_BYTES = 255


def split_alias(alias: str) -> tuple[str, str]:
    """('#room:example.org') -> ('room', 'example.org'); 400 M_INVALID_PARAM otherwise."""
    local, sep, server = alias[1:].partition(":")
    if (
        not alias.startswith("#")
        or not sep
        or not local
        or not server
        or len(alias.encode()) > _MAX_ALIAS_BYTES
        or any(c.isspace() for c in alias)
    ):
        raise invalid_param(f"Invalid room alias {alias!r}")
    return local, server


def _string(state: Mapping[str, Any], event_type: str, key: str) -> str | None:
    value = state.get(event_type, {}).get(key)
    return value if isinstance(value, str) and value else None


def summary_fields(row: RoomSummaryRow) -> dict[str, Any]:
    """The public rooms chunk of a room: what /publicRooms and /hierarchy share."""
    state = row.state
    chunk: dict[str, Any] = {
        "room_id": row.room_id,
        "num_joined_members": row.joined_members,
        "world_readable": _string(state, "m.room.history_visibility", "history_visibility")
        == "world_readable",
        "guest_can_join": _string(state, "m.room.guest_access", "guest_access") == "can_join",
    }
    optional = {
        "name": _string(state, "m.room.name", "name"),
        "topic": plain_topic(state.get("m.room.topic", {})),
        "canonical_alias": _string(state, CANONICAL_ALIAS, "alias"),
        "avatar_url": _string(state, "m.room.avatar", "url"),
        "join_rule": _string(state, "m.room.join_rules", "join_rule"),
        "room_type": _string(state, "m.room.create", "type"),
    }
    chunk.update({k: v for k, v in optional.items() if v is not None})
    return chunk


@attrs.frozen
class PublicRoomsPage:
    chunk: list[dict[str, Any]]
    next_batch: str | None
    prev_batch: str | None
    total: int

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"chunk": self.chunk, "total_room_count_estimate": self.total}
        if self.next_batch is not None:
            body["next_batch"] = self.next_batch
        if self.prev_batch is not None:
            body["prev_batch"] = self.prev_batch
        return body


def _token(row: RoomSummaryRow, *, forwards: bool) -> str:
    return f"{'n' if forwards else 'p'}{row.joined_members}_{row.room_id}"


def _cursor(token: str) -> DirectoryCursor:
    """Parse a directory token: n|p, the joined count, '_', the room id."""
    count, sep, room_id = token[1:].partition("_")
    if token[:1] not in ("n", "p") or not sep or not count.isdigit() or not room_id:
        raise invalid_param("Invalid pagination token")
    return DirectoryCursor(int(count), room_id, token[0] == "n")


class DirectoryService:
    def __init__(
        self,
        pipeline: EventPipeline,
        events: EventStore,
        rooms: RoomStore,
        directory: DirectoryStore,
        *,
        server_name: str,
        remote: RemoteQueries | None = None,
        appservices: AppServiceAliases | None = None,
    ) -> None:
        # Other servers' aliases; None when this server does not federate.
        self._remote = remote
        # Exclusive alias namespaces, and the aliases bridges create on demand.
        self._appservices = appservices
        self._pipeline = pipeline
        self._events = events
        self._rooms = rooms
        self._directory = directory
        self._server_name = server_name
        self._alias_listeners: list[Callable[[str], None]] = []

    def add_alias_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(room_id)` when an alias of the room is published or
        removed (the appservice delivery matches rooms by their aliases)."""
        self._alias_listeners.append(listener)

    def _aliases_changed(self, room_id: str) -> None:
        for listener in self._alias_listeners:
            listener(room_id)

    def is_local_alias(self, alias: str) -> bool:
        _, sep, server = alias.partition(":")
        return bool(sep) and server == self._server_name

    async def _auth_state(self, room_id: str, user_id: str) -> dict[StateKey, Event]:
        """The create, power levels and user's member events: what power checks read."""
        keys = [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", user_id)]
        ids = await self._directory.state_ids(room_id, keys)
        found = await self._events.get_events(ids.values())
        return {k: found[i].event for k, i in ids.items() if i in found}

    async def can_change_room_list(self, room_id: str, user_id: str) -> bool:
        """In the room, with the power to send m.room.canonical_alias (Synapse's rule).

        404 for unknown rooms.
        """
        state = await self._auth_state(room_id, user_id)
        create = state.get(("m.room.create", ""))
        if create is None:
            raise not_found("Unknown room")
        member = state.get(("m.room.member", user_id))
        if member is None or member.content.get("membership") != "join":
            return False
        version = create.room_version
        power = get_power_level(version, user_id, state)
        return power >= get_required_level(version, CANONICAL_ALIAS, "", state)

    # Aliases

    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        _, server = split_alias(alias)
        if server != self._server_name:
            raise invalid_param("Room alias must be on this server")
        if not room_id.startswith("!"):
            raise invalid_param("Invalid room id")
        own_namespace = self._appservices is not None and self._appservices.check_create(
            requester, alias
        )
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        if own_namespace:
            if not await self._rooms.exists(room_id):
                raise not_found("Unknown room")
        elif membership != "join":
            if not await self._rooms.exists(room_id):
                raise not_found("Unknown room")
            raise forbidden("You must be in the room to create an alias for it")
        try:
            await self._rooms.create_alias(alias, room_id, requester.user_id)
        except AliasInUseError:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists") from None
        self._aliases_changed(room_id)

    async def resolve_alias(self, alias: str) -> dict[str, Any]:
        split_alias(alias)
        found = await self._directory.alias(alias)
        if found is None and self._appservices is not None and await self._appservices.query(alias):
            found = await self._directory.alias(alias)
        if found is None:
            raise not_found(f"Room alias {alias} not found")
        room_id = found[0]
        servers = await self._directory.joined_servers(room_id)
        # This server answers for the alias, so it is the first to try.
        ordered = [self._server_name, *(s for s in servers if s != self._server_name)]
        return {"room_id": room_id, "servers": ordered}

    async def resolve_any_alias(self, alias: str) -> dict[str, Any]:
        """An alias of this server or, through `remote`, of another one."""
        _, server = split_alias(alias)
        if self._remote is not None and server != self._server_name:
            return await self._remote.alias(alias)
        return await self.resolve_alias(alias)

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        split_alias(alias)
        found = await self._directory.alias(alias)
        if found is None:
            raise not_found(f"Room alias {alias} not found")
        if self._appservices is not None:
            self._appservices.check_change(requester, alias)
        room_id, creator = found
        if creator != requester.user_id and not await self.can_change_room_list(
            room_id, requester.user_id
        ):
            raise forbidden("You don't have permission to delete the alias")
        await self._directory.delete_alias(alias)
        self._aliases_changed(room_id)
        await self._drop_from_canonical_alias(requester, room_id, alias)

    async def _drop_from_canonical_alias(
        self, requester: Requester, room_id: str, alias: str
    ) -> None:
        """Remove a deleted alias from the room's m.room.canonical_alias, if the user may."""
        ids = await self._directory.state_ids(room_id, [(CANONICAL_ALIAS, "")])
        found = await self._events.get_events(ids.values())
        if not found:
            return
        content = dict(next(iter(found.values())).event.content)
        alt = content.get("alt_aliases")
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        if isinstance(alt, list) and alias in alt:
            content["alt_aliases"] = [a for a in alt if a != alias]
            changed = True
        if not changed:
            return
        try:
            await self._pipeline.send(
                room_id,
                type=CANONICAL_ALIAS,
                sender=requester.user_id,
                content=content,
                state_key="",
            )
        except MatrixError as e:
            # The alias is gone either way; the state event is a courtesy.
            logger.info("could not update %s of %s: %s", CANONICAL_ALIAS, room_id, e.message)

    async def room_aliases(self, requester: Requester, room_id: str) -> list[str]:
        """The room's local aliases, for its members or anyone if it is world readable."""
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        if membership != "join":
            summary = (await self._directory.summaries([room_id])).get(room_id)
            if summary is None:
                raise not_found("Unknown room")
            if not summary_fields(summary)["world_readable"]:
                raise forbidden("You are not in this room and it is not world readable")
        return await self._directory.aliases_of(room_id)

    # The published room directory

    async def visibility(self, room_id: str) -> str:
        public = await self._directory.is_public(room_id)
        if public is None:
            raise not_found("Room not found")
        return "public" if public else "private"

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be 'public' or 'private'")
        if not await self.can_change_room_list(room_id, requester.user_id):
            raise forbidden("You are not permitted to change this room's directory visibility")
        await self._directory.set_public(room_id, visibility == "public")

    async def public_rooms(
        self,
        *,
        server: str | None,
        limit: int | None,
        since: str | None,
        where: DirectoryFilter,
    ) -> PublicRoomsPage:
        """A page of the directory, ordered by joined members (most first) then room id.

        `since` is a token from an earlier page: an `n` token continues after
        its room, a `p` token goes back to the rooms before it.
        """
        if server is not None and server != self._server_name:
            raise invalid_param("Only this server's room directory can be listed")
        if limit is None:
            limit = DEFAULT_DIRECTORY_LIMIT
        if limit < 1:
            raise invalid_param("limit must be a positive integer")
        limit = min(limit, MAX_DIRECTORY_LIMIT)
        cursor = _cursor(since) if since else None
        rows = await self._directory.public_rooms(where, cursor, limit + 1)
        more = len(rows) > limit
        next_batch = prev_batch = None
        if cursor is None or cursor.forwards:
            page = rows[:limit]
            if page and more:
                next_batch = _token(page[-1], forwards=True)
            if page and cursor is not None:
                prev_batch = _token(page[0], forwards=False)
        else:
            page = rows[-limit:]
            if page and more:
                prev_batch = _token(page[0], forwards=False)
            if page:
                next_batch = _token(page[-1], forwards=True)
        total = await self._directory.count_public_rooms(where)
        return PublicRoomsPage([summary_fields(r) for r in page], next_batch, prev_batch, total)
