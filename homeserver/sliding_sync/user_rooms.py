"""Every room of a user with its activity and kind: what the lists are cut
from, read in two statements however many rooms there are, and brought up
to date cheaply while a long poll waits.

A first look reads the user's memberships and every room's facts
(storage/sliding_sync.py `room_facts`). After that, one walk over the stream
range in between says what moved: the memberships are read again when the
user's own member events moved; otherwise the joined rooms with new events
take their new last and bumping positions from that walk, and only those
whose state changed (name, encryption) have their facts read again. So a long poll woken by a message, and the
next request of a connection, cost a few small statements, not a read of
all the user's rooms. The last view of the most recently active users is
kept in memory for that; as every look checks the database for what moved
since the view's position, a view is never stale, even with several
processes. Far behind (`MAX_CATCH_UP` positions), a full read is cheaper.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Mapping

import attrs

from homeserver.sliding_sync.room_list import BUMP_TYPES, ListRoom, list_room, order_key, ordered
from storage.sliding_sync import RoomFacts, SlidingSyncStore
from storage.sync import Membership, SyncStore


@attrs.frozen
class UserRooms:
    # The event stream position this view is as of.
    at: int
    memberships: tuple[Membership, ...]
    facts: Mapping[str, RoomFacts]
    # How many rooms the user had forgotten: a change means a full read.
    forgotten: int
    # The rooms joined (whose events a long poll waits for), made once per
    # full read so that the polls of one user share one set.
    joined: frozenset[str]
    # Every membership as a list entry, newest first (room_list.py `ordered`),
    # and by room: made once per look, not per list per request.
    listed: tuple[ListRoom, ...]
    by_id: Mapping[str, ListRoom]


def _listed(
    memberships: tuple[Membership, ...], facts: Mapping[str, RoomFacts]
) -> tuple[tuple[ListRoom, ...], dict[str, ListRoom]]:
    rooms = ordered([list_room(m, facts.get(m.room_id)) for m in memberships])
    return tuple(rooms), {r.room_id: r for r in rooms}


def _moved(before: UserRooms, now: int, fresh: Mapping[str, RoomFacts]) -> UserRooms:
    """The view with new facts for a few joined rooms: only their entries are
    made again, each taken out of the ordered list where its old order put it
    and put back where its new one does (two binary searches, not a sort of
    all the user's rooms on every wake-up)."""
    facts = {**before.facts, **fresh}
    by_id = dict(before.by_id)
    listed = list(before.listed)
    for room_id in fresh:
        entry = by_id.get(room_id)
        if entry is None:
            continue
        del listed[bisect_left(listed, order_key(entry), key=order_key)]
        by_id[room_id] = list_room(entry.membership, facts[room_id])
        insort(listed, by_id[room_id], key=order_key)
    return attrs.evolve(before, at=now, facts=facts, listed=tuple(listed), by_id=by_id)


def _cap(m: Membership, now: int) -> int:
    """A joined room is seen up to now; another only up to the user's membership."""
    return now if m.membership == "join" else m.stream_ordering


# Users whose last view is kept (a few hundred bytes per room of theirs).
MAX_CACHED_USERS = 256
# Beyond this many event positions behind, a view is read afresh.
MAX_CATCH_UP = 20_000


class UserRoomsReader:
    def __init__(self, sync_store: SyncStore, store: SlidingSyncStore) -> None:
        self._sync_store = sync_store
        self._store = store
        self._views: OrderedDict[str, UserRooms] = OrderedDict()

    async def read(self, user_id: str, now: int) -> UserRooms:
        """The user's rooms as of `now`."""
        view = await self._read(user_id, now, self._views.get(user_id))
        self._views[user_id] = view
        self._views.move_to_end(user_id)
        while len(self._views) > MAX_CACHED_USERS:
            self._views.popitem(last=False)
        return view

    async def _read(self, user_id: str, now: int, before: UserRooms | None) -> UserRooms:
        if before is None or before.at > now or now - before.at > MAX_CATCH_UP:
            return await self._full(user_id, now)
        # One statement says what moved (a forget included, which moves no
        # stream); the facts of the rooms whose state
        # changed are read again, the others' only advance their positions.
        moves = await self._store.moves(user_id, before.at, now, BUMP_TYPES)
        if moves.membership or moves.forgotten != before.forgotten:
            return await self._full(user_id, now)
        changed = {r: m for r, m in moves.rooms.items() if r in before.joined}
        if not changed:
            return before if before.at == now else attrs.evolve(before, at=now)
        reread = [r for r, m in changed.items() if m.state or r not in before.facts]
        fresh = (
            await self._store.room_facts([(r, now) for r in reread], BUMP_TYPES) if reread else {}
        )
        for room_id, m in changed.items():
            if room_id not in fresh:
                old = before.facts[room_id]
                fresh[room_id] = attrs.evolve(
                    old,
                    last_event=m.last_event if m.last_event is not None else old.last_event,
                    bump=m.bump if m.bump is not None else old.bump,
                )
        return _moved(before, now, fresh)

    async def _full(self, user_id: str, now: int) -> UserRooms:
        forgotten = await self._store.forgotten_count(user_id)
        memberships = [
            m for m in await self._sync_store.memberships(user_id, 0, now) if not m.forgotten
        ]
        facts = await self._store.room_facts(
            [(m.room_id, _cap(m, now)) for m in memberships], BUMP_TYPES
        )
        joined = frozenset(m.room_id for m in memberships if m.membership == "join")
        listed, by_id = _listed(tuple(memberships), facts)
        return UserRooms(now, tuple(memberships), facts, forgotten, joined, listed, by_id)
