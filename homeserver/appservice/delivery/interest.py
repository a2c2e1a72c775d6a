"""Which events and rooms an application service is interested in.

An appservice wants an event when its sender, or the user a member event is
about, is in its user namespace, or when the room is: its id in the room
namespace, any member (any membership) in the user namespace, or one of its
aliases (canonical, alternative or published) in the alias namespace.

Matching a room means matching every member against regexes, so the room's
members and aliases are cached with each appservice's verdict; the delivery
drops a room from the cache when it reads a member or canonical alias event
of it in the stream, and the directory tells it of published alias changes.
Loading is in bulk (one query for all the rooms of a batch), and a load that
raced with an invalidation is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import attrs

from storage.appservice_delivery import AppServiceDeliveryStore, RoomInterestRow, StreamEvent

if TYPE_CHECKING:
    from homeserver.appservice.registration import AppService

# Rooms kept in the cache; beyond this the least recently used are dropped.
MAX_CACHED_ROOMS = 10_000
# State events that change what a room offers to be matched.
INTEREST_STATE = ("m.room.member", "m.room.canonical_alias")


@attrs.define
class _CachedRoom:
    row: RoomInterestRow
    verdicts: dict[str, bool] = attrs.Factory(dict)


class RoomInterest:
    """The members and aliases of rooms, and each appservice's verdict on them."""

    def __init__(self, store: AppServiceDeliveryStore) -> None:
        self._store = store
        self._rooms: OrderedDict[str, _CachedRoom] = OrderedDict()
        # Bumped by every invalidation: a load begun before it is not kept.
        self._generation: dict[str, int] = {}

    def invalidate(self, room_id: str) -> None:
        """The room's members or aliases changed."""
        self._rooms.pop(room_id, None)
        self._generation[room_id] = self._generation.get(room_id, 0) + 1

    def invalidate_for(self, events: Iterable[StreamEvent]) -> None:
        for event in events:
            if event.type in INTEREST_STATE and event.state_key is not None:
                self.invalidate(event.room_id)

    async def load(self, room_ids: Collection[str]) -> None:
        """Make sure these rooms are cached (one query for those that are not)."""
        missing = [r for r in room_ids if r not in self._rooms]
        if not missing:
            for room_id in room_ids:
                self._rooms.move_to_end(room_id)
            return
        started = {r: self._generation.get(r, 0) for r in missing}
        rows = await self._store.rooms_interest(missing)
        for room_id, row in rows.items():
            if self._generation.get(room_id, 0) == started[room_id]:
                self._rooms[room_id] = _CachedRoom(row)
        while len(self._rooms) > MAX_CACHED_ROOMS:
            self._rooms.popitem(last=False)

    def room_wanted(self, appservice: AppService, room_id: str) -> bool:
        """Whether the appservice is interested in the room (call `load` first;
        a room that is not cached is matched on its id only)."""
        if appservice.is_room_in_namespace(room_id):
            return True
        cached = self._rooms.get(room_id)
        if cached is None:
            return False
        verdict = cached.verdicts.get(appservice.id)
        if verdict is None:
            verdict = cached.verdicts[appservice.id] = any(
                appservice.is_user_in_namespace(m) for m in cached.row.members
            ) or any(appservice.is_alias_in_namespace(a) for a in cached.row.aliases)
        return verdict

    def event_wanted(self, appservice: AppService, event: StreamEvent) -> bool:
        if appservice.is_user_in_namespace(event.sender):
            return True
        if (
            event.type == "m.room.member"
            and event.state_key is not None
            and appservice.is_user_in_namespace(event.state_key)
        ):
            return True
        return self.room_wanted(appservice, event.room_id)
