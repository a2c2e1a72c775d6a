"""Which servers the federation sender sends a room's events to, kept up to
date from the events it reads instead of read again for every batch.

Reading them is a query over all of the room's joined members (a 10,000-member
room: 10,000 rows, each joined to its event for its stream position), which
the sender used to run for every batch of new events, a join or a message
alike. Here a room's servers are read once and then followed through the
local events the sender reads in stream order: a new join adds its server,
(this server's own members change nothing the sender uses), and anything
else that could change them (a leave, a ban, a rejoin of a server already
there whose position could move, an event not built on the last one
seen, as after a fork or a remote event, whose state may have been resolved)
drops the room, to be read again with the next batch. At most `MAX_ROOMS`
rooms are kept, the least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

import attrs

from storage.federation_sender import FederationSenderStore, OutgoingEvent

MAX_ROOMS: Final = 10_000


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def _prev_ids(event: OutgoingEvent) -> list[str]:
    """The prev event ids of a PDU (rooms 1 and 2 list [id, hashes] pairs)."""
    prevs = event.pdu.get("prev_events")
    if not isinstance(prevs, list):
        return []
    return [p[0] if isinstance(p, list) and p else p for p in prevs]


@attrs.define
class _Room:
    # {server with joined members: stream position of its oldest member event}.
    servers: dict[str, int]
    # The last event of the room the servers are known to be current after.
    head: str


class RoomServers:
    """{room: {server: since}} as `FederationSenderStore.room_servers` answers
    it, for the rooms of a batch of local events read in stream order."""

    def __init__(self, store: FederationSenderStore, server_name: str) -> None:
        self._store = store
        self._server_name = server_name
        self._rooms: OrderedDict[str, _Room] = OrderedDict()

    async def for_events(self, events: Sequence[OutgoingEvent]) -> dict[str, dict[str, int]]:
        """The servers of each room of `events` (in stream order), after them:
        followed from the kept ones where possible, the rest read in one query."""
        stale: set[str] = set()
        for event in events:
            room = self._rooms.get(event.room_id)
            if room is None or event.room_id in stale:
                stale.add(event.room_id)
            elif not self._follow(room, event):
                stale.add(event.room_id)
                del self._rooms[event.room_id]
        if stale:
            read = await self._store.room_servers(stale)
            last = {e.room_id: e.event_id for e in events}
            for room_id in stale:
                self._rooms[room_id] = _Room(dict(read[room_id]), last[room_id])
        result = {}
        for room_id in {e.room_id for e in events}:
            self._rooms.move_to_end(room_id)
            result[room_id] = dict(self._rooms[room_id].servers)
        while len(self._rooms) > MAX_ROOMS:
            self._rooms.popitem(last=False)
        return result

    def _follow(self, room: _Room, event: OutgoingEvent) -> bool:
        """Bring `room` past `event`; False if its servers can no longer be
        known without reading them again."""
        if _prev_ids(event) != [room.head]:
            return False
        room.head = event.event_id
        pdu = event.pdu
        if pdu.get("type") != "m.room.member" or not isinstance(pdu.get("state_key"), str):
            return True
        content = pdu.get("content")
        membership = content.get("membership") if isinstance(content, dict) else None
        if membership in ("invite", "knock"):
            return True
        server = _server_of(pdu["state_key"])
        if server == self._server_name:
            # The sender never sends to this server: its entry does not matter.
            room.servers.setdefault(server, event.stream_ordering)
            return True
        if membership != "join" or server in room.servers:
            # A member left (their server may have no one left), or a server
            # already in the room changed a member event: its oldest may move.
            return False
        room.servers[server] = event.stream_ordering
        return True
