"""Typing notifications: in memory, each expiring on its own timer.

Typing is short-lived and worthless after a restart, so it never touches the
database. Its stream position is a counter that restarts at 0; a token from
before a restart can be ahead of it, and is then read as "from the start".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from homeserver.ephemeral.common import ephemeral_rooms
from homeserver.errors import forbidden
from homeserver.notifier import Notifier
from homeserver.requester import Requester
from homeserver.sync.response import SyncRequest, room_entry
from storage.rooms import RoomStore

STREAM = "typing"
DEFAULT_TIMEOUT_MS = 30_000
# As Synapse: nobody is typing for more than two minutes without saying so again.
MAX_TIMEOUT_MS = 120_000
# Other servers' typing notifications carry no timeout; Synapse's is a minute.
REMOTE_TIMEOUT_MS = 60_000


class ActivityTracker(Protocol):
    async def bump_active(self, user_id: str) -> None: ...


# listener(room id, user id, typing): told of every start (renewals too, so
# that other servers' timers are renewed) and every stop.
TypingListener = Callable[[str, str, bool], None]


class TypingService:
    # An incremental sync carries only the rooms whose typists changed in its range.
    sync_streams = (STREAM,)

    def __init__(self, notifier: Notifier, rooms: RoomStore, activity: ActivityTracker) -> None:
        self._notifier = notifier
        self._rooms = rooms
        self._activity = activity
        # room -> typing user -> the timer that ends their typing.
        self._typing: dict[str, dict[str, asyncio.TimerHandle]] = {}
        # room -> stream position of its last change.
        self._changed: dict[str, int] = {}
        self._position = 0
        self._listeners: list[TypingListener] = []

    def add_listener(self, listener: TypingListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._notifier.notify(STREAM, self._position)

    def stop(self) -> None:
        for typists in self._typing.values():
            for timer in typists.values():
                timer.cancel()
        self._typing.clear()

    async def set_typing(
        self, requester: Requester, room_id: str, user_id: str, typing: bool, timeout_ms: int
    ) -> None:
        if requester.user_id != user_id:
            raise forbidden("Cannot set another user's typing state")
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership != "join":
            raise forbidden("You are not in this room")
        await self._activity.bump_active(user_id)
        if typing:
            self._started(room_id, user_id, min(timeout_ms, MAX_TIMEOUT_MS))
        else:
            self._stopped(room_id, user_id)

    async def set_remote(self, room_id: str, user_id: str, typing: bool) -> None:
        """Typing of another server's user (the caller checked the user is
        theirs); ignored unless the user is in the room. Their server renews
        it; without news it ends after REMOTE_TIMEOUT_MS."""
        membership, _ = await self._rooms.membership(room_id, user_id)
        if membership != "join":
            return
        if typing:
            self._started(room_id, user_id, REMOTE_TIMEOUT_MS)
        else:
            self._stopped(room_id, user_id)

    def typing_users(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, ()))

    def _started(self, room_id: str, user_id: str, timeout_ms: int) -> None:
        typists = self._typing.setdefault(room_id, {})
        previous = typists.get(user_id)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        typists[user_id] = loop.call_later(timeout_ms / 1000, self._stopped, room_id, user_id)
        if previous is None:
            self._advance(room_id, user_id)
        for listener in self._listeners:
            listener(room_id, user_id, True)

    def _stopped(self, room_id: str, user_id: str) -> None:
        typists = self._typing.get(room_id, {})
        timer = typists.pop(user_id, None)
        if timer is None:
            return
        timer.cancel()
        if not typists:
            del self._typing[room_id]
        self._advance(room_id, user_id)
        for listener in self._listeners:
            listener(room_id, user_id, False)

    def _advance(self, room_id: str, user_id: str) -> None:
        """The room's typing set changed (`user_id` started or stopped)."""
        self._position += 1
        self._changed[room_id] = self._position
        self._notifier.notify(STREAM, self._position, rooms=[room_id])

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """m.typing in the ephemeral events of the joined rooms whose typing
        set changed in (since, now]: every room with typists on an initial sync."""
        now = request.now[STREAM]
        initial = request.since is None or request.full_state
        since = 0 if initial else request.since[STREAM]
        if since > now:
            # A token from before a restart: everything since the restart is new.
            since = 0
        if since == now:
            return
        joined = await request.rooms(self._rooms)
        changed = [r for r in joined if since < self._changed.get(r, 0) <= now]
        for room_id in ephemeral_rooms(request, "m.typing", changed):
            user_ids = self.typing_users(room_id)
            if initial and not user_ids:
                continue
            entry = room_entry(response, "join", room_id)
            entry.setdefault("ephemeral", {"events": []})["events"].append(
                {"type": "m.typing", "content": {"user_ids": user_ids}}
            )
