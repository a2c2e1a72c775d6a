"""The pushes of events, read from the database: the pushers' duty.

An event's notification rows commit with the event (push/notifications.py),
and every local user with a pusher gets a row of their own. This follower
reads those rows in stream order whenever the events stream moves (one
query per wake, whole events, at most `BATCH_EVENTS` of them) and hands
each event to the sender (push/sender.py). Its position is stored in
PostgreSQL (`pusher_stream_position`) and moves only past events whose
pushes were all sent or given up, so whoever holds the pushers' lease next
(the process restarted, another `pusher` worker after a SIGKILL) resumes
there: no push is lost, and the events after that position are pushed
again, at least once in all: those in flight when the holder died, and any
later ones it had pushed while an older one was still being retried.

Each wake costs that one query when nothing is to be pushed (the position
is then stored at most every `QUIET_SAVE_S`), and per event pushed the
sender's reads (pushers, room names, badge) and one store of the position.
A slow gateway does not hold the others up: events are read and handed
over while earlier ones are still being pushed (up to `MAX_PENDING` events
in flight), and the stored position is the one before the oldest of them.

Badge updates follow read receipts (`receipts_stored`, from the receipt
service in one process or the ephemeral streams' follower in a cluster);
they are not replayed after a takeover: the user's next receipt or push
carries the right badge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Final

from homeserver.notifier import Notifier
from homeserver.push.sender import PushSender
from storage.events import EventStore
from storage.push import NewNotification
from storage.push_stream import PushStreamStore
from storage.receipts import Receipt

logger = logging.getLogger(__name__)

# Events read per wake; a longer range is read in several wakes.
BATCH_EVENTS: Final = 100
# Events handed to the sender and not yet pushed, beyond which reading waits.
MAX_PENDING: Final = 1000
# After a failed read or write, try again this much later (nothing is lost).
ERROR_RETRY_S: Final = 1.0
# A position moved by reads that found nothing to push is stored at most
# this often (a range read again after a restart finds nothing either).
QUIET_SAVE_S: Final = 1.0


class PushStream:
    def __init__(
        self,
        store: PushStreamStore,
        events: EventStore,
        sender: PushSender,
        notifier: Notifier,
    ) -> None:
        self._store = store
        self._events = events
        self._sender = sender
        self._notifier = notifier
        # How far rows were read and handed over, and the position stored.
        self._read = 0
        self._saved = 0
        self._saved_at = 0.0
        # Whether pushes ended since the last store: their position is stored at once.
        self._pushes_ended = False
        # Stream positions of the events handed over and not yet pushed.
        self._pending: Counter[int] = Counter()
        self._moved = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        notifier.add_stream_listener(self._stream_moved)

    async def start(self) -> None:
        """Resume from the stored position (the first time: from now)."""
        self._pending.clear()
        self._saved = self._read = await self._store.start_at(
            self._notifier.positions.get("events", 0)
        )
        self._moved.set()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop reading and drop the pushes in flight (their events are
        past the stored position: the next holder pushes them)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sender.stop()
        self._pending.clear()

    def receipts_stored(self, receipts: Sequence[Receipt]) -> None:
        """Read receipts lower the readers' badges: pushed by the holder of
        the duty only."""
        if self._task is not None:
            self._sender.receipts_stored(receipts)

    def receipt_stored(self, receipt: Receipt) -> None:
        """The receipt service's listener (one process)."""
        self.receipts_stored([receipt])

    def _stream_moved(self, stream: str, position: int) -> None:
        if stream == "events" and position > self._read:
            self._moved.set()

    async def _follow(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            try:
                if sum(self._pending.values()) < MAX_PENDING:
                    await self._read_batch()
                await self._save()
            except Exception:
                logger.exception("following the push notifications failed; trying again")
                await asyncio.sleep(ERROR_RETRY_S)
                self._moved.set()

    async def _read_batch(self) -> None:
        after, upto = self._read, self._notifier.positions.get("events", 0)
        if upto <= after:
            return
        rows = await self._store.pushable(after, upto, BATCH_EVENTS)
        by_event: dict[tuple[int, str], list[NewNotification]] = {}
        for row in rows:
            by_event.setdefault((row.stream_ordering, row.event_id), []).append(row)
        found = await self._events.get_events(event_id for _, event_id in by_event)
        for (position, event_id), notifications in by_event.items():
            stored = found.get(event_id)
            if stored is None:  # purged since: nothing to push
                continue
            self._pending[position] += 1
            done = self._sender.push_event(stored.event, notifications)
            done.add_done_callback(lambda _, p=position: self._pushed(p))
        if len(by_event) == BATCH_EVENTS:
            # Whole events were read: the rest of the range starts after the last.
            self._read = max(position for position, _ in by_event)
            self._moved.set()
        else:
            self._read = upto

    def _pushed(self, position: int) -> None:
        if self._task is None:  # stopped: nothing is pending any more
            return
        self._pending[position] -= 1
        if self._pending[position] <= 0:
            del self._pending[position]
        self._pushes_ended = True
        self._moved.set()

    async def _save(self) -> None:
        """Store the position before the oldest event still being pushed."""
        safe = min(self._pending) - 1 if self._pending else self._read
        if safe <= self._saved:
            return
        now = time.monotonic()
        if self._pushes_ended or now - self._saved_at >= QUIET_SAVE_S:
            self._pushes_ended = False
            await self._store.save(safe)
            self._saved, self._saved_at = safe, now
