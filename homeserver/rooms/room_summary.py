"""Room summaries (MSC3266, spec v1.15): `GET /room_summary/{roomIdOrAlias}`.

A room this server has a member in is summarised from its current state;
any other is asked of the servers in `via` (and those an alias resolved to)
through the federation hierarchy, as Synapse does, and the answer shown only
if the requester may see the room. Without authentication only rooms open to
anyone (world-readable, or public or knockable) are shown, as the spec allows.
A requester gets their own `membership` ("leave" when they have none there,
as Synapse answers). A room that is unknown or may not be seen is 404 alike,
so that a summary does not reveal that a private room exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from homeserver.errors import invalid_param, not_found
from homeserver.requester import Requester
from homeserver.rooms.remote_hierarchy import RemoteHierarchy
from homeserver.rooms.room_access import (
    accessible_to_user,
    open_to_anyone,
    remote_accessible,
    summary_entry,
)
from storage.directory import DirectoryStore
from storage.room_servers import RoomServersStore
from storage.rooms import RoomStore

# Servers from `via` asked at most.
MAX_VIA = 10


class AliasResolver(Protocol):
    async def resolve_any_alias(self, alias: str) -> dict[str, Any]: ...


def _not_found() -> Exception:
    return not_found("Room not found or is not accessible")


class RoomSummaries:
    def __init__(
        self,
        aliases: AliasResolver,
        directory: DirectoryStore,
        rooms: RoomStore,
        access: RoomServersStore,
        *,
        server_name: str,
        remote: RemoteHierarchy | None = None,
    ) -> None:
        self._aliases = aliases
        self._directory = directory
        self._rooms = rooms
        self._access = access
        self._server_name = server_name
        # Rooms this server is not in; None when it does not federate.
        self._remote = remote

    async def summary(
        self, requester: Requester | None, room_id_or_alias: str, via: Sequence[str]
    ) -> dict[str, Any]:
        servers = [v for v in via if v][:MAX_VIA]
        if room_id_or_alias.startswith("#"):
            resolved = await self._aliases.resolve_any_alias(room_id_or_alias)
            room_id = resolved["room_id"]
            servers += [s for s in resolved.get("servers", []) if s not in servers]
        elif room_id_or_alias.startswith("!"):
            room_id = room_id_or_alias
        else:
            raise invalid_param("Expected a room id or a room alias")
        user_id = requester.user_id if requester is not None else None
        if await self._access.rooms_with_server([room_id], self._server_name):
            entry = await self._local(user_id, room_id)
        else:
            entry = await self._remote_summary(user_id, room_id, servers)
        return entry

    async def _local(self, user_id: str | None, room_id: str) -> dict[str, Any]:
        row = (await self._directory.summaries([room_id], user_id)).get(room_id)
        if row is None:
            raise _not_found()
        if user_id is None:
            visible = open_to_anyone(row)
        else:
            visible = accessible_to_user(row, set(await self._rooms.rooms_for_user(user_id)))
        if not visible:
            raise _not_found()
        entry = summary_entry(row)
        if user_id is not None:
            entry["membership"] = row.membership or "leave"
        return entry

    async def _remote_summary(
        self, user_id: str | None, room_id: str, servers: list[str]
    ) -> dict[str, Any]:
        if self._remote is None:
            raise _not_found()
        # A room id of the older versions names the server that made it.
        origin = room_id.partition(":")[2]
        if origin and origin not in servers:
            servers.append(origin)
        found = await self._remote.hierarchy(servers, room_id, suggested_only=True)
        if found is None:
            raise _not_found()
        membership = None
        joined = None
        if user_id is not None:
            membership = (await self._access.memberships_of(user_id, [room_id])).get(room_id)
            joined = set(await self._rooms.rooms_for_user(user_id))
        if not remote_accessible(found.entry, membership, joined):
            raise _not_found()
        entry = dict(found.entry)
        if user_id is not None:
            entry["membership"] = membership or "leave"
        return entry
