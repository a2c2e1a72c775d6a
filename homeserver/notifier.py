"""Stream positions, and the /sync requests waiting for them to move.

Every stream (room events, account data, receipts, typing, ...) reports its
new position here with the users or rooms it concerns; a waiting request
wakes only when something concerns its user or one of its rooms. In a
cluster, homeserver/cluster/notifier.py feeds it across processes through
PostgreSQL LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping

import attrs

from homeserver.stream_moves import RecentMoves


@attrs.define(eq=False)
class _Watch:
    """The requests of one user waiting on one set of rooms, indexed under
    the user and each of the rooms once however many they are: a client
    with thousands of rooms and several open long polls (sliding sync
    connections, devices) would otherwise add thousands of index entries
    per poll, and walk them on every wait and wake-up."""

    user_id: str
    rooms: frozenset[str]
    woken: set[asyncio.Event] = attrs.Factory(set)


# The last watch of this many users stays indexed while none of their
# requests waits: a client polls again right after each response, and the
# watch is then ready, not indexed under every room again.
MAX_IDLE_WATCHES = 256


class Notifier:
    # Whether other processes move these positions too (a cluster's notifier).
    shared = False

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self._watches: dict[tuple[str, frozenset[str]], _Watch] = {}
        # Watches nobody waits on, by user (one each), least recently used first.
        self._idle: OrderedDict[str, _Watch] = OrderedDict()
        self._by_user: dict[str, set[_Watch]] = {}
        self._by_room: dict[str, set[_Watch]] = {}
        self._stream_listeners: list[Callable[[str, int], None]] = []
        # Whom each recent move concerned: what a woken /sync may skip.
        self.recent = RecentMoves()

    def add_stream_listener(self, listener: Callable[[str, int], None]) -> None:
        """Call `listener(stream, position)` whenever a stream moves: for
        readers of a whole stream (the federation sender), not of one user."""
        self._stream_listeners.append(listener)

    def notify(
        self,
        stream: str,
        position: int,
        *,
        users: Iterable[str] = (),
        rooms: Iterable[str] = (),
    ) -> None:
        """A stream moved to `position` with news for these users and rooms."""
        users, rooms = tuple(users), tuple(rooms)
        self.recent.record(stream, position, users, rooms)
        if position > self.positions.get(stream, 0):
            self.positions[stream] = position
            for listener in self._stream_listeners:
                listener(stream, position)
        for user_id in users:
            for watch in self._by_user.get(user_id, ()):
                for woken in watch.woken:
                    woken.set()
        for room_id in rooms:
            for watch in self._by_room.get(room_id, ()):
                for woken in watch.woken:
                    woken.set()

    @contextlib.asynccontextmanager
    async def writing(self, stream: str) -> AsyncIterator[None]:
        """Around a write whose position the database assigns in the write
        itself (account data): nothing to do in one process; in a cluster,
        the process's position on `stream` waits for the write to end."""
        yield

    async def close(self) -> None:
        """Nothing to release in one process (a cluster's closes its connection)."""

    def wake_everyone(self) -> None:
        """Wake every waiting request (news whose users and rooms are unknown)."""
        for watch in self._watches.values():
            for woken in watch.woken:
                woken.set()

    def moved_since(self, known: Mapping[str, int]) -> bool:
        return any(self.positions.get(s, 0) > p for s, p in known.items())

    async def wait(
        self,
        user_id: str,
        rooms: Collection[str],
        known: Mapping[str, int],
        timeout_s: float,
    ) -> None:
        """Until news for the user or their rooms, or `timeout_s` seconds.

        Returns at once if any stream moved past `known` already, so nothing
        that happened between the caller's look and this wait is missed.
        """
        if timeout_s <= 0 or self.moved_since(known):
            return
        key = (user_id, frozenset(rooms))
        idle = self._idle.pop(user_id, None)
        if idle is not None and idle.rooms != key[1]:
            self._unwatch(idle)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(user_id, key[1])
            self._by_user.setdefault(user_id, set()).add(watch)
            for room_id in watch.rooms:
                self._by_room.setdefault(room_id, set()).add(watch)
        woken = asyncio.Event()
        watch.woken.add(woken)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await woken.wait()
        finally:
            watch.woken.discard(woken)
            if not watch.woken:
                self._rest(watch)

    def _rest(self, watch: _Watch) -> None:
        """Nobody waits on `watch` now: it stays as its user's idle one."""
        replaced = self._idle.pop(watch.user_id, None)
        if replaced is not None and replaced is not watch:
            self._unwatch(replaced)
        self._idle[watch.user_id] = watch
        while len(self._idle) > MAX_IDLE_WATCHES:
            _, oldest = self._idle.popitem(last=False)
            self._unwatch(oldest)

    def _unwatch(self, watch: _Watch) -> None:
        if watch.woken:
            return
        del self._watches[(watch.user_id, watch.rooms)]
        self._forget(self._by_user, watch.user_id, watch)
        for room_id in watch.rooms:
            self._forget(self._by_room, room_id, watch)

    @staticmethod
    def _forget(index: dict[str, set[_Watch]], key: str, watch: _Watch) -> None:
        waiters = index.get(key)
        if waiters is not None:
            waiters.discard(watch)
            if not waiters:
                del index[key]
