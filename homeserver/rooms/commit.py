"""The commit step every path that stores an event ends in.

A path (local sends, received events, joins, outliers: the other modules
named in pipeline.py) prepares the event inside the room's writer, which
holds the room's asyncio lock in this process and its PostgreSQL advisory
lock across processes; here it is persisted with what readers must see with
it (transaction hooks: push notification rows), committed, its stream
position published in order (waking the readers of every event that became
visible), and the commit hooks run (work no reader waits for). A long state
delta chain is compacted in the background.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from homeserver.events.event import Event
from homeserver.notifier import Notifier
from storage.events import EventStore, NewEvent, RoomWriter, StoredEvent
from storage.state import MAX_CHAIN_LENGTH, StateStore
from storage.streams import StreamIds

logger = logging.getLogger(__name__)

# A hook in an accepted event's transaction; what it returns runs once committed.
TransactionHook = Callable[[RoomWriter, NewEvent], Awaitable[Callable[[], None] | None]]


class RoomCommitter:
    def __init__(
        self, events: EventStore, state: StateStore, stream: StreamIds, notifier: Notifier
    ) -> None:
        self._events = events
        self._state = state
        self._stream = stream
        self._notifier = notifier
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Committed events not yet visible (an earlier position is in flight):
        # stream position -> (room id, member event's target).
        self._unpublished: dict[int, tuple[str, str | None]] = {}
        # Room id -> its compaction in progress: one at a time per room.
        self._compactions: dict[str, asyncio.Task[None]] = {}
        # Awaited inside each accepted event's transaction, after its rows:
        # what readers must see together with the event (push notification
        # counts), committed with it in one commit.
        self._transaction_hooks: list[TransactionHook] = []
        # Awaited after each accepted event commits and its waiters were
        # woken: work derived from the event that no reader waits for. A hook
        # handles its own errors: the event is committed either way.
        self._commit_hooks: list[Callable[[Event, int], Awaitable[None]]] = []

    async def allocate(self, conn: asyncpg.Connection) -> int:
        """The stream position of a new event, taken on the writer's connection."""
        return await self._stream.allocate(conn)

    def add_transaction_hook(self, hook: TransactionHook) -> None:
        """Call `hook(writer, new)` in the transaction of every accepted event.

        It may only use `writer` for the database (a pool connection taken
        while the room's writer holds one could deadlock a busy pool); a
        failure fails the event. What it returns, if anything, is called once
        the event is committed (a listener's news that must not precede it).
        """
        self._transaction_hooks.append(hook)

    def add_commit_hook(self, hook: Callable[[Event, int], Awaitable[None]]) -> None:
        """Call `hook(event, stream_ordering)` after every committed event."""
        self._commit_hooks.append(hook)

    async def in_transaction(self, writer: RoomWriter, new: NewEvent) -> list[Callable[[], None]]:
        """Run the transaction hooks; what each asks to run after the commit."""
        after = []
        for hook in self._transaction_hooks:
            then = await hook(writer, new)
            if then is not None:
                after.append(then)
        return after

    async def after_commit(self, new: NewEvent, after: Sequence[Callable[[], None]]) -> None:
        for then in after:
            then()
        for hook in self._commit_hooks:
            await hook(new.event, new.stream_ordering)

    def lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def commit(self, room_id: str, write: Any) -> StoredEvent:
        """Run `write` in the room's transaction, then publish the event.

        `write` returns the event to persist, or the id of an event that
        already answers the request (a retried transaction id).
        """
        new: NewEvent | None = None
        committed = False
        after: list[Callable[[], None]] = []
        try:
            async with self.lock(room_id), self._events.room_writer(room_id) as writer:
                result = await write(writer)
                if isinstance(result, str):
                    return (await writer.get_events([result]))[result]
                new = result
                await writer.persist(new)
                after = await self.in_transaction(writer, new)
            committed = True
            # Before any await: the room's next writer cannot have built on
            # this group yet, so the first group past the chain limit is the
            # one compacted, not a later one that would leave it long.
            self.maybe_compact(new)
            writer.remember(new)
        finally:
            if new is not None:
                self.publish(new, committed)
        # Waiters are woken first: nothing after the commit is theirs to wait for.
        await self.after_commit(new, after)
        stored = await self._events.get_events([new.event.event_id])
        return stored[new.event.event_id]

    def publish(self, new: NewEvent, committed: bool) -> None:
        """Committed or abandoned, the position is no longer in flight; wake
        the readers of every event that just became visible in stream order."""
        if committed:
            event = new.event
            member = event.state_key if event.type == "m.room.member" else None
            self._unpublished[new.stream_ordering] = (event.room_id, member)
        if not self._stream.finish(new.stream_ordering):
            return
        visible = [p for p in self._unpublished if p <= self._stream.current]
        rooms, users = set(), set()
        for position in visible:
            room, member = self._unpublished.pop(position)
            rooms.add(room)
            if member:
                users.add(member)
        self._notifier.notify("events", self._stream.current, rooms=rooms, users=users)

    def maybe_compact(self, new: NewEvent | None) -> None:
        """Rewrite a long delta chain as a snapshot, in the background."""
        if new is None or new.state_group is None or new.state_chain_length <= MAX_CHAIN_LENGTH:
            return
        room_id = new.event.room_id
        if room_id in self._compactions:
            return
        task = asyncio.create_task(self._compact(room_id, new.state_group))
        self._compactions[room_id] = task
        task.add_done_callback(lambda _: self._compactions.pop(room_id, None))

    async def _compact(self, room_id: str, group: int) -> None:
        try:
            async with self.lock(room_id):
                await self._state.compact(room_id, group)
        except Exception:
            logger.exception("compacting state group %d failed", group)

    async def drain(self) -> None:
        """Wait for background compactions (at shutdown, and in tests)."""
        while self._compactions:
            await asyncio.gather(*self._compactions.values())
