"""Device list changes: the "device_lists" stream and its part of /sync.

A change is recorded when a local user gains or loses a device (and, with
end-to-end encryption, when their keys change: `record_change`). A /sync
reports in `device_lists.changed` the users sharing a room with the syncing
user whose devices changed in the range, the user themselves included, and
the users they newly share a room with; in `device_lists.left` the users they
no longer share any room with. Clients refetch the keys of the former and
forget the latter. An initial sync reports nothing: the client fetches the
keys of everyone it needs anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from homeserver.ephemeral.common import StreamPublisher
from homeserver.stream_moves import MEMBERS
from homeserver.sync.response import SyncRequest
from storage.device_lists import DeviceListChanges, DeviceListStore

STREAM = "device_lists"


class DeviceListService:
    def __init__(self, store: DeviceListStore, publisher: StreamPublisher) -> None:
        self._store = store
        self._publisher = publisher

    async def start(self) -> None:
        await self._publisher.start()

    async def record_change(self, user_id: str) -> None:
        """The user's devices or device keys changed: tell everyone who shares a room."""
        position = await self._publisher.allocate()
        sharing: list[str] | None = None
        try:
            sharing = await self._store.record(user_id, position)
        finally:
            self._publisher.publish(
                position, sharing is not None, users=[user_id, *(sharing or ())]
            )

    async def record_private_change(self, user_id: str, only_for: str) -> None:
        """The user's keys changed in a way only `only_for` may see."""
        position = await self._publisher.allocate()
        recorded = False
        try:
            await self._store.record_private(user_id, position, only_for)
            recorded = True
        finally:
            self._publisher.publish(position, recorded, users=[only_for])

    async def devices_changed(
        self, user_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        """Called by the session service after devices were created or deleted."""
        if added or removed:
            await self.record_change(user_id)

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        changes = DeviceListChanges([], [])
        if request.since is not None:
            now = request.now
            # A token from ahead of this server's position has nothing new to report.
            devices_after = min(request.since[STREAM], now[STREAM])
            events_after = min(request.since["events"], now["events"])
            moved = devices_after < now[STREAM] or events_after < now["events"]
            if moved and not request.quiet(STREAM, MEMBERS):
                changes = await self._store.changes(
                    request.user_id, devices_after, now[STREAM], events_after, now["events"]
                )
        response["device_lists"] = {"changed": changes.changed, "left": changes.left}
