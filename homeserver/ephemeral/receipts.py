"""Read receipts and the fully-read marker.

A receipt says how far a user has read a room (or one thread of it). Each
user has one receipt per room, type and thread, and like Synapse it only
moves forward: a receipt for an event older than the current one is
accepted and ignored. Private receipts (m.read.private) reach only their
owner. The fully-read marker is room account data that also only moves
forward, in topological order.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.ephemeral.common import StreamPublisher, ephemeral_rooms, since_position
from homeserver.ephemeral.typing import ActivityTracker
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.identifiers import is_valid_room_id
from homeserver.requester import Requester
from homeserver.sync.response import SyncRequest, room_entry
from storage.receipts import UNTHREADED, Receipt, ReceiptStore, ReceiptTarget
from storage.rooms import RoomStore

STREAM = "receipts"
READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE)
MAIN_TIMELINE = "main"

# Told of every stored public receipt (private ones never leave their owner).
ReceiptListener = Callable[[Receipt], None]
# Users whose read positions are kept in memory (least recently read dropped first).
MAX_CACHED_READERS = 10_000


class ReceiptService:
    # An incremental sync carries only the receipts set in its range.
    sync_streams = (STREAM,)

    def __init__(
        self,
        store: ReceiptStore,
        publisher: StreamPublisher,
        rooms: RoomStore,
        account_data: AccountDataService,
        activity: ActivityTracker,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._rooms = rooms
        self._account_data = account_data
        self._activity = activity
        # One fully-read update at a time per (user, room): read, compare, write.
        self._marker_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._listeners: list[ReceiptListener] = []
        self._private_listeners: list[ReceiptListener] = []
        # user -> (receipts position when read, {room: {thread key: read up to}}):
        # what the unread counts of a /sync start from, valid while the
        # receipts stream has not moved for the user or those rooms.
        self._read_cache: OrderedDict[str, tuple[int, dict[str, dict[str, int]]]] = OrderedDict()

    def add_listener(self, listener: ReceiptListener, *, private: bool = False) -> None:
        """Hear stored receipts: public ones, and with `private` m.read.private too."""
        (self._private_listeners if private else self._listeners).append(listener)

    async def start(self) -> None:
        await self._publisher.start()

    async def send_receipt(
        self,
        requester: Requester,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None,
    ) -> None:
        """POST /receipt: a receipt, or the fully-read marker under its receipt name."""
        if receipt_type not in (*RECEIPT_TYPES, FULLY_READ):
            raise invalid_param(
                f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}, {FULLY_READ}"
            )
        if thread_id is not None and receipt_type == FULLY_READ:
            raise invalid_param(f"thread_id is not compatible with {FULLY_READ}")
        await self._check(requester, room_id, [event_id])
        if receipt_type == FULLY_READ:
            await self._move_marker(requester.user_id, room_id, event_id)
        else:
            await self._receipt(requester.user_id, room_id, receipt_type, event_id, thread_id)

    async def set_read_markers(
        self, requester: Requester, room_id: str, markers: dict[str, str]
    ) -> None:
        """POST /read_markers: {receipt or marker type: event id}; unknown types ignored."""
        known = {t: e for t, e in markers.items() if t in (*RECEIPT_TYPES, FULLY_READ)}
        await self._check(requester, room_id, list(known.values()))
        if FULLY_READ in known:
            await self._move_marker(requester.user_id, room_id, known[FULLY_READ])
        for receipt_type in RECEIPT_TYPES:
            if receipt_type in known:
                await self._receipt(
                    requester.user_id, room_id, receipt_type, known[receipt_type], None
                )

    async def _check(self, requester: Requester, room_id: str, event_ids: list[str]) -> None:
        if not is_valid_room_id(room_id):
            raise invalid_param("Invalid room id")
        if not all(e.startswith("$") for e in event_ids):
            raise invalid_param("Invalid event id")
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        if membership != "join":
            raise forbidden("You are not in this room")
        await self._activity.bump_active(requester.user_id)

    async def _target(self, room_id: str, event_id: str) -> ReceiptTarget:
        target = await self._store.target(room_id, event_id)
        if target is None:
            raise not_found("Unknown event in this room")
        return target

    async def receive_remote(
        self, room_id: str, user_id: str, event_ids: Sequence[str], thread_id: str | None, ts: int
    ) -> None:
        """m.read receipts of another server's user (the caller checked the
        user is theirs): kept if the user is in the room and we have the
        event; others are dropped."""
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership != "join":
            return
        for event_id in event_ids:
            try:
                await self._receipt(user_id, room_id, READ, event_id, thread_id, ts)
            except MatrixError:
                continue

    async def _receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None,
        ts: int | None = None,
    ) -> None:
        target = await self._target(room_id, event_id)
        if thread_id is not None:
            in_thread = target.thread if thread_id == MAIN_TIMELINE else target.receipt_thread
            if in_thread != thread_id:
                raise invalid_param(f"event_id {event_id} is not related to thread {thread_id}")
        receipt = Receipt(
            room_id=room_id,
            user_id=user_id,
            receipt_type=receipt_type,
            thread_id=UNTHREADED if thread_id is None else thread_id,
            event_id=event_id,
            ts=int(time.time() * 1000) if ts is None else ts,
        )
        position = await self._publisher.allocate()
        stored = False
        try:
            stored = await self._store.put(receipt, target.stream_ordering, position)
        finally:
            # Others see public receipts; a private one wakes only its owner.
            if receipt_type == READ_PRIVATE:
                self._publisher.publish(position, stored, users=[user_id])
            else:
                self._publisher.publish(position, stored, rooms=[room_id])
        if stored:
            public = self._listeners if receipt_type != READ_PRIVATE else []
            for listener in [*public, *self._private_listeners]:
                listener(receipt)

    async def _move_marker(self, user_id: str, room_id: str, event_id: str) -> None:
        """Set m.fully_read unless it already points at this event or a later one."""
        key = (user_id, room_id)
        lock = self._marker_locks.get(key)
        if lock is None:
            lock = self._marker_locks[key] = asyncio.Lock()
        async with lock:
            target = await self._target(room_id, event_id)
            try:
                current = await self._account_data.get(user_id, user_id, room_id, FULLY_READ)
            except MatrixError:
                current = {}
            current_id = current.get("event_id")
            if isinstance(current_id, str):
                position = await self._store.topological(room_id, current_id)
                if position is not None and position >= target.topological:
                    return
            await self._account_data.put_unchecked(
                user_id, room_id, FULLY_READ, {"event_id": event_id}
            )

    async def last_read_streams(self, user_id: str, room_ids: Sequence[str]) -> dict[str, int]:
        """{room: stream_ordering of the last event the user has read in the
        main timeline}, from their m.read and m.read.private receipts,
        unthreaded or for "main"; rooms without such a receipt are left out.

        Events with a greater stream_ordering are unread (thread events count
        against their thread: see `thread_read_streams`). One query.
        """
        positions = await self._store.read_positions(user_id, room_ids)
        read = {}
        for room_id, threads in positions.items():
            main = [threads[t] for t in (UNTHREADED, MAIN_TIMELINE) if t in threads]
            if main:
                read[room_id] = max(main)
        return read

    async def last_read_stream(self, user_id: str, room_id: str) -> int | None:
        return (await self.last_read_streams(user_id, [room_id])).get(room_id)

    async def thread_read_streams(
        self, user_id: str, room_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """{room: {thread key: stream_ordering read up to}} with every thread
        key the user has a receipt for: '' (unthreaded: applies to the main
        timeline and every thread), 'main', or a thread root's event id. An
        event in thread T is read if its stream_ordering is at most the
        greater of the '' and T positions. One query, or none when they were
        read before and no receipt moved for the user or these rooms since:
        a thousand long polls woken by one message ask again what they asked
        when they parked."""
        cached = self._read_cache.pop(user_id, None)
        if (
            cached is not None
            and all(r in cached[1] for r in room_ids)
            and not self._publisher.moved_for(user_id, room_ids, cached[0])
        ):
            self._read_cache[user_id] = cached
            return {r: dict(cached[1][r]) for r in room_ids if cached[1][r]}
        position = self._publisher.position
        found = await self._store.read_positions(user_id, room_ids)
        self._read_cache[user_id] = (position, {r: dict(found.get(r, {})) for r in room_ids})
        if len(self._read_cache) > MAX_CACHED_READERS:
            self._read_cache.popitem(last=False)
        return found

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """m.receipt in the ephemeral events of joined rooms with receipts set
        in (since, now]; on an initial sync, the rooms' latest receipts."""
        since = since_position(request, STREAM)
        if since is None:
            return
        joined = await request.rooms(self._rooms)
        room_ids = ephemeral_rooms(request, "m.receipt", joined)
        if not room_ids:
            return
        receipts = await self._store.visible_between(
            room_ids, request.user_id, since, request.now[STREAM]
        )
        by_room: dict[str, dict[str, Any]] = {}
        for r in receipts:
            data: dict[str, Any] = {"ts": r.ts}
            if r.thread_id != UNTHREADED:
                data["thread_id"] = r.thread_id
            content = by_room.setdefault(r.room_id, {})
            content.setdefault(r.event_id, {}).setdefault(r.receipt_type, {})[r.user_id] = data
        for room_id, content in by_room.items():
            entry = room_entry(response, "join", room_id)
            entry.setdefault("ephemeral", {"events": []})["events"].append(
                {"type": "m.receipt", "content": content}
            )
