"""Typing, receipts and presence of every process, for the outbound duties
(and read receipts, private ones too, for the pushers' badges).

In one process the federation sender and the appservice delivery hear these
changes from the services' in-process listeners. In a cluster a change is
made in whichever process the user's request reached, so those listeners
would hear only their own process. Instead the follower reads the changes
from the database: every change already takes a position of its shared
stream and a row (typing in `typing_users`, cluster/typing.py), and every
process hears each stream's new positions through the cluster notifier. On
each move it reads the rows in (last read, visible position] with one query
per stream that moved, and hands them in one batch per stream to its
listeners, which route them as they route the in-process changes. Changes
made in this process arrive the same way (and only this way: server.py
registers the duties here instead of on the services, so nothing is sent
twice).

Positions start at the streams' positions when the process starts and are
not stored: typing and presence are worthless once stale, and a read
receipt is superseded by the user's next one (Synapse does not resend
receipts after a restart either). So a change made while no process held
the sender's lease (the seconds of a failover) is not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from homeserver.ephemeral.receipts import READ
from homeserver.notifier import Notifier
from storage.ephemeral_changes import EphemeralChangeStore, TypingChange
from storage.presence import PresenceRow
from storage.receipts import Receipt

logger = logging.getLogger(__name__)

T = TypeVar("T")

TYPING = "typing"
RECEIPTS = "receipts"
PRESENCE = "presence"
STREAMS = (TYPING, RECEIPTS, PRESENCE)
# Rows read per query; a longer range is read in several wakes.
BATCH = 1000
# After a failed read, try again this much later (the position is kept).
ERROR_RETRY_S = 1.0

# (room id, user id, typing now), one per typist whose typing changed.
TypingListener = Callable[[Sequence[tuple[str, str, bool]]], None]
ReceiptListener = Callable[[Sequence[Receipt]], None]
PresenceListener = Callable[[list[PresenceRow]], None]


class EphemeralFollower:
    def __init__(self, store: EphemeralChangeStore, notifier: Notifier) -> None:
        self._store = store
        self._notifier = notifier
        # How far each stream has been read.
        self._positions: dict[str, int] = {}
        self._typing: list[TypingListener] = []
        self._receipts: list[ReceiptListener] = []
        # The pushers' badges: private read receipts too.
        self._reader_receipts: list[ReceiptListener] = []
        self._presence: list[PresenceListener] = []
        # room -> typist -> when their typing ends (epoch seconds).
        self._typists: dict[str, dict[str, float]] = {}
        self._moved = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def listen(
        self,
        *,
        typing: TypingListener | None = None,
        receipts: ReceiptListener | None = None,
        presence: PresenceListener | None = None,
        read_receipts: ReceiptListener | None = None,
    ) -> None:
        """Hear the changes of the streams given a listener (`receipts`:
        public receipts only; `read_receipts`: m.read.private too)."""
        if read_receipts is not None:
            self._reader_receipts.append(read_receipts)
        if typing is not None:
            self._typing.append(typing)
        if receipts is not None:
            self._receipts.append(receipts)
        if presence is not None:
            self._presence.append(presence)

    async def start(self) -> None:
        """Follow from the streams' current positions, knowing who types now."""
        for stream in STREAMS:
            self._positions[stream] = self._notifier.positions.get(stream, 0)
        self._notifier.add_stream_listener(self._stream_moved)
        # Read after the position: changes in between are read again, harmlessly.
        for change in await self._store.typing_now():
            self._remember(change)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def typing_users(self, room_id: str) -> list[str]:
        """Who types in the room now, whichever process they type through."""
        typists = self._typists.get(room_id)
        if not typists:
            return []
        now = time.time()
        for user_id in [u for u, until in typists.items() if until <= now]:
            # Their process ended without saying they stopped.
            del typists[user_id]
        if not typists:
            del self._typists[room_id]
        return sorted(typists)

    def _stream_moved(self, stream: str, position: int) -> None:
        if position > self._positions.get(stream, position):
            self._moved.set()

    async def _follow(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            try:
                await self._read_typing()
                await self._read_receipts()
                await self._read_presence()
            except Exception:
                logger.exception("reading the ephemeral streams failed; trying again")
                await asyncio.sleep(ERROR_RETRY_S)
                self._moved.set()

    def _range(self, stream: str, wanted: bool) -> tuple[int, int] | None:
        """(after, upto) to read of `stream`, None if nothing to read; a
        stream nobody listens to moves on unread."""
        after, upto = self._positions[stream], self._notifier.positions.get(stream, 0)
        if upto <= after:
            return None
        if not wanted:
            self._positions[stream] = upto
            return None
        return after, upto

    def _advance(self, stream: str, upto: int, last: int | None) -> None:
        """Read up to `upto`, or only to `last` when a full batch came back
        (the rest is read at once, in the next turn)."""
        if last is not None:
            self._positions[stream] = last
            self._moved.set()
        else:
            self._positions[stream] = upto

    async def _read_typing(self) -> None:
        # Read even without listeners: `typing_users` answers from it.
        found = self._range(TYPING, True)
        if found is None:
            return
        changes = await self._store.typing(*found, BATCH)
        self._advance(TYPING, found[1], changes[-1].stream_id if len(changes) == BATCH else None)
        for change in changes:
            self._remember(change)
        if changes:
            batch = [(c.room_id, c.user_id, c.typing) for c in changes]
            self._tell(self._typing, batch)

    async def _read_receipts(self) -> None:
        found = self._range(RECEIPTS, bool(self._receipts or self._reader_receipts))
        if found is None:
            return
        rows = await self._store.public_receipts(
            *found, BATCH, with_private=bool(self._reader_receipts)
        )
        self._advance(RECEIPTS, found[1], rows[-1][0] if len(rows) == BATCH else None)
        public = [receipt for _, receipt in rows if receipt.receipt_type == READ]
        if public:
            self._tell(self._receipts, public)
        if rows:
            self._tell(self._reader_receipts, [receipt for _, receipt in rows])

    async def _read_presence(self) -> None:
        found = self._range(PRESENCE, bool(self._presence))
        if found is None:
            return
        rows = await self._store.presence(*found, BATCH)
        self._advance(PRESENCE, found[1], rows[-1][0] if len(rows) == BATCH else None)
        if rows:
            self._tell(self._presence, [row for _, row in rows])

    @staticmethod
    def _tell(listeners: Sequence[Callable[[list[T]], None]], batch: list[T]) -> None:
        for listener in listeners:
            try:
                listener(batch)
            except Exception:
                logger.exception("an ephemeral stream listener failed")

    def _remember(self, change: TypingChange) -> None:
        typists = self._typists.setdefault(change.room_id, {})
        if change.typing and change.until is not None:
            typists[change.user_id] = change.until.timestamp()
        else:
            typists.pop(change.user_id, None)
            if not typists:
                del self._typists[change.room_id]
