"""Typing in a cluster: set through any process, seen by every /sync.

The single process keeps typing in memory (homeserver/ephemeral/typing.py).
In a cluster the process where a user types still runs their timer, but each
change also takes a position of the shared typing stream and is written to
`typing_users` with the moment it ends, so a /sync served by any process
reads who types from the database, and the cluster notifier wakes it.
Should the process that ran a timer die, its typists drop out of what /sync
reports when their time is up (read with `until > now()`).

A renewal (typing again while typing) is written too, at most every
RENEW_SHARE_S per typist: the federation sender and appservices hear typing
from these rows (cluster/ephemeral_follower.py), and other servers end a
typist's typing unless it is renewed within their timeout (Synapse's: 60 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from homeserver.ephemeral.common import StreamPublisher, ephemeral_rooms
from homeserver.ephemeral.typing import STREAM, ActivityTracker, TypingService
from homeserver.notifier import Notifier
from homeserver.sync.response import SyncRequest, room_entry
from storage.rooms import RoomStore
from storage.typing import TypingStore

logger = logging.getLogger(__name__)

# How often a typist's renewals are written (and so sent to other servers).
RENEW_SHARE_S = 10.0


class SharedTypingService(TypingService):
    def __init__(
        self,
        notifier: Notifier,
        rooms: RoomStore,
        activity: ActivityTracker,
        store: TypingStore,
        publisher: StreamPublisher,
    ) -> None:
        super().__init__(notifier, rooms, activity)
        self._store = store
        self._publisher = publisher
        # Changes are written in the order they happened.
        self._order = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()
        # (room, typist) -> when their typing was last written (monotonic).
        self._shared: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        """The shared position was announced by the publisher's start."""

    def _started(self, room_id: str, user_id: str, timeout_ms: int) -> None:
        renewal = user_id in self._typing.get(room_id, {})
        super()._started(room_id, user_id, timeout_ms)
        last = self._shared.get((room_id, user_id), 0.0)
        if renewal and time.monotonic() - last >= RENEW_SHARE_S:
            self._advance(room_id, user_id)

    def _advance(self, room_id: str, user_id: str) -> None:
        timer = self._typing.get(room_id, {}).get(user_id)
        until = None
        if timer is not None:
            left_s = timer.when() - asyncio.get_running_loop().time()
            until = datetime.fromtimestamp(time.time() + left_s, UTC)
            self._shared[(room_id, user_id)] = time.monotonic()
        else:
            self._shared.pop((room_id, user_id), None)
        task = asyncio.create_task(self._write(room_id, user_id, until))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, room_id: str, user_id: str, until: datetime | None) -> None:
        async with self._order:
            try:
                position = await self._publisher.allocate()
            except Exception:
                logger.exception("typing in %s not shared", room_id)
                return
            committed = False
            try:
                await self._store.set(room_id, user_id, until, position)
                committed = True
            except Exception:
                logger.exception("typing in %s not shared", room_id)
            finally:
                self._publisher.publish(position, committed, rooms=[room_id])

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """m.typing of the joined rooms whose typing changed in (since, now],
        as the database has it (whichever process the typing went through)."""
        now = request.now[STREAM]
        initial = request.since is None or request.full_state
        since = 0 if initial else min(request.since[STREAM], now)
        if since == now:
            return
        joined = await request.rooms(self._rooms)
        rooms = ephemeral_rooms(request, "m.typing", joined)
        if not rooms:
            return
        for room_id, user_ids in (await self._store.changed(rooms, since, now)).items():
            if initial and not user_ids:
                continue
            entry = room_entry(response, "join", room_id)
            entry.setdefault("ephemeral", {"events": []})["events"].append(
                {"type": "m.typing", "content": {"user_ids": user_ids}}
            )
