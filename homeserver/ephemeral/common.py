"""What the ephemeral streams share: ordered publication and room filtering."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from homeserver.notifier import Notifier
from homeserver.sync.filter import event_allowed
from homeserver.sync.response import SyncRequest
from storage.streams import StreamIds


class StreamPublisher:
    """Hands out positions of a database-backed stream and wakes readers only
    once every position up to the new one has committed, so that a /sync
    never skips a write that committed late."""

    def __init__(self, stream: str, ids: StreamIds, notifier: Notifier) -> None:
        self._stream = stream
        self._ids = ids
        self._notifier = notifier
        # Committed positions not yet visible: who each one concerns.
        self._pending: dict[int, tuple[Iterable[str], Iterable[str]]] = {}

    async def start(self) -> None:
        await self._ids.start()
        self._notifier.notify(self._stream, self._ids.current)

    @property
    def position(self) -> int:
        """The stream's position: every write up to it is visible."""
        return self._notifier.positions.get(self._stream, 0)

    def moved_for(self, user_id: str, rooms: Collection[str], after: int) -> bool:
        """Whether the stream may have moved for the user or one of `rooms`
        since `after` (True when the notifier's record cannot tell)."""
        return self._notifier.recent.moved_for(self._stream, user_id, rooms, after, self.position)

    async def allocate(self) -> int:
        """A position, in flight until `publish` is called with it (whatever happens)."""
        return await self._ids.allocate()

    def publish(
        self,
        position: int,
        committed: bool,
        *,
        users: Iterable[str] = (),
        rooms: Iterable[str] = (),
    ) -> None:
        if committed:
            self._pending[position] = (users, rooms)
        if not self._ids.finish(position):
            return
        current = self._ids.current
        woken_users: set[str] = set()
        woken_rooms: set[str] = set()
        for visible in [p for p in self._pending if p <= current]:
            visible_users, visible_rooms = self._pending.pop(visible)
            woken_users.update(visible_users)
            woken_rooms.update(visible_rooms)
        self._notifier.notify(self._stream, current, users=woken_users, rooms=woken_rooms)


def ephemeral_rooms(request: SyncRequest, event_type: str, joined: Iterable[str]) -> list[str]:
    """The joined rooms whose ephemeral events of this type the filter lets through."""
    room_filter = request.filter.get("room", {})
    ephemeral_filter = room_filter.get("ephemeral", {})
    if not event_allowed(ephemeral_filter, event_type):
        return []
    return [
        room_id
        for room_id in joined
        if event_allowed(room_filter, event_type, room_id=room_id)
        and event_allowed(ephemeral_filter, event_type, room_id=room_id)
    ]


def since_position(request: SyncRequest, stream: str) -> int | None:
    """Where this response starts on the stream: 0 for an initial or
    full-state sync, None when nothing can have happened (since >= now)."""
    now = request.now[stream]
    if request.since is None or request.full_state:
        return 0 if now > 0 else None
    since = request.since[stream]
    return since if since < now else None
