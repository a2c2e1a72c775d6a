"""Every room of a user with its activity and kind: what the lists are cut
from, read in two statements however many rooms there are, and brought up
to date cheaply while a long poll waits.

A first look reads the user's memberships and every room's facts
(storage/sliding_sync.py `room_facts`). Between two looks of the same
request, only what moved is read again: the memberships when the user's own
member events moved, otherwise the facts of the joined rooms that have new
events in between, found by a walk over that short stream range. So a
long poll woken by a message costs a few small statements, not a read of
all the user's rooms.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from homeserver.sliding_sync.room_list import BUMP_TYPES
from storage.sliding_sync import RoomFacts, SlidingSyncStore
from storage.sync import Membership, SyncStore


@attrs.frozen
class UserRooms:
    # The event stream position this view is as of.
    at: int
    memberships: tuple[Membership, ...]
    facts: Mapping[str, RoomFacts]


def _cap(m: Membership, now: int) -> int:
    """A joined room is seen up to now; another only up to the user's membership."""
    return now if m.membership == "join" else m.stream_ordering


class UserRoomsReader:
    def __init__(self, sync_store: SyncStore, store: SlidingSyncStore) -> None:
        self._sync_store = sync_store
        self._store = store

    async def read(self, user_id: str, now: int, before: UserRooms | None) -> UserRooms:
        """The view as of `now`, from `before` (an earlier look) where that is cheaper."""
        if before is not None and before.at == now:
            return before
        if (
            before is None
            or before.at > now
            or await self._store.member_events_between(user_id, before.at, now)
        ):
            memberships = [
                m for m in await self._sync_store.memberships(user_id, 0, now) if not m.forgotten
            ]
            facts = await self._store.room_facts(
                [(m.room_id, _cap(m, now)) for m in memberships], BUMP_TYPES
            )
            return UserRooms(now, tuple(memberships), facts)
        joined = [m.room_id for m in before.memberships if m.membership == "join"]
        moved = await self._store.rooms_with_events_between(joined, before.at, now)
        if not moved:
            return UserRooms(now, before.memberships, before.facts)
        fresh = await self._store.room_facts([(r, now) for r in moved], BUMP_TYPES)
        return UserRooms(now, before.memberships, {**before.facts, **fresh})
