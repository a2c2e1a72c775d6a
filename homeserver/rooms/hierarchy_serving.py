"""The federation hierarchy this server serves (`GET /_matrix/federation/v1/hierarchy/{roomId}`).

Unlike the client's, it does not recurse or paginate: the room with its
`m.space.child` events, and a summary of each child this server is in that
the requesting server may see; the children it may not see are listed in
`inaccessible_children` so that it does not ask again, and children this
server is not in are left out (the requesting server can ask their `via`).
What a server may see follows Synapse (see room_access.py); the requesting
server filters the answer further for its user. A few queries in all, for
the room and its children at once.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import not_found
from homeserver.rooms.hierarchy import SPACE, SpaceHierarchy
from homeserver.rooms.room_access import (
    accessible_to_server,
    restricted_to,
    summary_entry,
)
from storage.directory import DirectoryStore, RoomSummaryRow
from storage.room_servers import RoomServersStore

# Children of one space summarised per request (as Synapse's cap).
MAX_CHILDREN = 50
_PRESENT = ("join", "invite")


class HierarchyServing:
    def __init__(
        self,
        hierarchy: SpaceHierarchy,
        directory: DirectoryStore,
        access: RoomServersStore,
        *,
        server_name: str,
    ) -> None:
        self._hierarchy = hierarchy
        self._directory = directory
        self._access = access
        self._server_name = server_name

    async def hierarchy(self, origin: str, room_id: str, suggested_only: bool) -> dict[str, Any]:
        row = await self._local_summary(room_id)
        if row is None or not await self._visible(origin, [row]):
            raise not_found("Unknown room")
        entry = summary_entry(row)
        children_state: list[dict[str, Any]] = []
        if entry.get("room_type") == SPACE:
            children_state = (await self._hierarchy.children([room_id], suggested_only)).get(
                room_id, []
            )
        child_ids = list(dict.fromkeys(c["state_key"] for c in children_state))[:MAX_CHILDREN]
        ours = await self._access.rooms_with_server(child_ids, self._server_name)
        rows = await self._directory.summaries([c for c in child_ids if c in ours])
        known = [rows[c] for c in child_ids if c in rows]
        visible = await self._visible(origin, known)
        return {
            "room": {**entry, "children_state": children_state},
            "children": [summary_entry(r) for r in known if r.room_id in visible],
            "inaccessible_children": [r.room_id for r in known if r.room_id not in visible],
        }

    async def _local_summary(self, room_id: str) -> RoomSummaryRow | None:
        if not await self._access.rooms_with_server([room_id], self._server_name):
            return None
        return (await self._directory.summaries([room_id])).get(room_id)

    async def _visible(self, origin: str, rows: list[RoomSummaryRow]) -> set[str]:
        """The ids of those rooms `origin` may see (one query for all)."""
        allowed = {r.room_id: restricted_to(r) for r in rows}
        asked = {r.room_id for r in rows} | {a for v in allowed.values() for a in v}
        present = await self._access.rooms_with_server(asked, origin, _PRESENT) if asked else set()
        return {
            r.room_id
            for r in rows
            if accessible_to_server(
                r, r.room_id in present, any(a in present for a in allowed[r.room_id])
            )
        }
