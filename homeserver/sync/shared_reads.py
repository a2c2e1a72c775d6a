"""The reads of /sync responses built at the same event stream position,
made once for all of them.

One message in a room of a thousand members wakes a thousand long polls,
which all ask for the same room's events in the same range and whether
they were redacted. Every answer here is kept for as long as the event
stream stays at the position it was read at, and shared (the first caller's
read in flight is awaited by the others). What these reads return cannot
change while the position stays: new events and redactions move it; the
store is asked again at the next position.

Only reads that do not depend on the user are shared: timelines with no
filter narrowing them and no ignored users (others go to the store), and
the redactions of events. Everything per user (history visibility, the
sender's transaction id, unread counts) is computed per request from them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from homeserver.notifier import Notifier
from storage.events import EventStore, StoredEvent
from storage.history import TimelineQuery
from storage.sync import SyncStore, TimelineRange, TimelineRows

_PLAIN = TimelineQuery()
# Entries kept at one position at most (ranges and event ids): a position
# is one event, read by the polls it woke, so this bounds a pathological case.
MAX_ENTRIES = 10_000

_Key = tuple[str, int, int, int]


class SharedReads:
    def __init__(self, store: SyncStore, events: EventStore, notifier: Notifier) -> None:
        self._store = store
        self._events = events
        self._notifier = notifier
        self._position = -1
        self._timelines: dict[_Key, asyncio.Task[dict[str, TimelineRows]]] = {}
        self._redactions: dict[str, asyncio.Task[dict[str, str]]] = {}

    def _fresh(self) -> None:
        """Forget what was read at an earlier position."""
        position = self._notifier.positions.get("events", 0)
        if position != self._position:
            self._position = position
            self._timelines = {}
            self._redactions = {}

    async def timelines(
        self, ranges: Sequence[TimelineRange], query: TimelineQuery, ignored: Collection[str]
    ) -> dict[str, TimelineRows]:
        """As SyncStore.timelines; ranges ending past the position read now
        (a request built just before a move) are read for this caller alone."""
        self._fresh()
        # This position's reads: the position may move while they are
        # awaited, and the next position's reads start empty.
        reads, position = self._timelines, self._position
        if query != _PLAIN or ignored or len(reads) > MAX_ENTRIES:
            return await self._store.timelines(ranges, query, ignored)
        shared = [r for r in ranges if r.hi <= position]
        own = [r for r in ranges if r.hi > position]
        missing = [r for r in shared if _key(r) not in reads]
        if missing:
            task = asyncio.create_task(self._store.timelines(missing, query, ignored))
            _share(task, [_key(r) for r in missing], reads)
        found: dict[str, TimelineRows] = (
            await self._store.timelines(own, query, ignored) if own else {}
        )
        for r in shared:
            rows = (await asyncio.shield(reads[_key(r)])).get(r.room_id)
            if rows is not None:
                found[r.room_id] = rows
        return found

    async def redactions_of(self, event_ids: Iterable[str]) -> dict[str, str]:
        """As EventStore.redactions_of."""
        self._fresh()
        reads = self._redactions
        ids = list(dict.fromkeys(event_ids))
        if len(reads) > MAX_ENTRIES:
            return await self._events.redactions_of(ids)
        missing = [i for i in ids if i not in reads]
        if missing:
            task = asyncio.create_task(self._events.redactions_of(missing))
            _share(task, missing, reads)
        found = {}
        for event_id in ids:
            redaction = (await asyncio.shield(reads[event_id])).get(event_id)
            if redaction is not None:
                found[event_id] = redaction
        return found

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        """As EventStore.get_events (which keeps its own cache)."""
        return await self._events.get_events(event_ids)


def _key(r: TimelineRange) -> _Key:
    return (r.room_id, r.lo, r.hi, r.limit)


def _share(task: asyncio.Task[Any], keys: Sequence[Any], cache: dict[Any, Any]) -> None:
    """The read in flight answers `keys`; a read that fails answers nobody
    after its own callers (the next ones read again)."""
    for key in keys:
        cache[key] = task

    def forget_failed(done: asyncio.Task[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            for key in keys:
                if cache.get(key) is done:
                    del cache[key]

    task.add_done_callback(forget_failed)
