"""Jump to date: the event of a room closest to a time
(`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`).

The closest event we have comes from one indexed query (storage/timestamps.py).
When there is none, or it sits next to a gap in our copy of the history on
the side the client is looking (a room joined late, history never
backfilled), the other servers in the room are asked (`RemoteTimestamps`,
over federation) as Synapse does; their event is fetched and stored as
history, and taken when it is closer to the time than ours.

Joined members, and anyone for a world-readable room, may ask (as Synapse,
which also does not check the event itself against history visibility: a
client then reads it through /context, which does).
"""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.errors import forbidden, not_found
from homeserver.requester import Requester
from homeserver.rooms.visibility import WORLD_READABLE, HistoryVisibility
from storage.rooms import RoomStore
from storage.timestamps import TimestampStore


class RemoteTimestamps(Protocol):
    async def closest(self, room_id: str, ts: int, forwards: bool) -> tuple[str, int] | None:
        """(event id, origin_server_ts) of the closest event another server in
        the room knows, once fetched and stored here; None if none answered."""
        ...


class JumpToDate:
    def __init__(
        self,
        store: TimestampStore,
        rooms: RoomStore,
        visibility: HistoryVisibility,
        remote: RemoteTimestamps | None = None,
    ) -> None:
        self._store = store
        self._rooms = rooms
        self._visibility = visibility
        # Other servers in the room; None when this server does not federate.
        self._remote = remote

    async def closest(
        self, requester: Requester, room_id: str, ts: int, forwards: bool
    ) -> dict[str, Any]:
        await self._check_access(requester.user_id, room_id)
        found = await self._store.closest(room_id, ts, forwards)
        gap = found is None or (found.backward_gap if forwards else found.forward_gap)
        if gap and self._remote is not None:
            remote = await self._remote.closest(room_id, ts, forwards)
            if remote is not None and (
                found is None or abs(remote[1] - ts) < abs(found.origin_server_ts - ts)
            ):
                return {"event_id": remote[0], "origin_server_ts": remote[1]}
        if found is None:
            raise not_found(f"No event found {'after' if forwards else 'before'} {ts}")
        return {"event_id": found.event_id, "origin_server_ts": found.origin_server_ts}

    async def _check_access(self, user_id: str, room_id: str) -> None:
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership == "join":
            return
        if await self._visibility.current(room_id) == WORLD_READABLE:
            return
        raise forbidden("You are not allowed to read this room")
