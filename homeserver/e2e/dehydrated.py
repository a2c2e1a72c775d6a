"""Dehydrated devices (MSC3814): a device a user's client leaves on the server
while no client of theirs is running, so that others can still encrypt to
them; the next client to start reads the messages it received and takes
over the room keys.

The device is a real device without an access token (so /keys/query lists
it, /keys/claim hands out its one-time keys, and to-device messages are
delivered to its inbox), plus a record of which device it is and the
client's `device_data` (the device's account, encrypted by the client). A new
one replaces the old, which is deleted with its keys and messages.
"""

from __future__ import annotations

import json
from typing import Any

from canonicaljson import encode_canonical_json

from homeserver.accounts.sessions import SessionService
from homeserver.e2e.keys import KeyService
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.notifier import Notifier
from homeserver.requester import Requester
from storage.dehydrated_devices import DehydratedDeviceStore
from storage.to_device import ToDeviceStore

# Messages per page of /events, whatever the client asks (as Synapse).
MAX_EVENTS = 100


class DehydratedDevices:
    def __init__(
        self,
        store: DehydratedDeviceStore,
        sessions: SessionService,
        keys: KeyService,
        to_device: ToDeviceStore,
        notifier: Notifier,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._keys = keys
        self._to_device = to_device
        self._notifier = notifier

    async def get(self, user_id: str) -> dict[str, Any]:
        found = await self._store.get(user_id)
        if found is None:
            raise not_found("No dehydrated device available")
        return {"device_id": found.device_id, "device_data": json.loads(found.device_data_json)}

    async def put(
        self,
        user_id: str,
        device_id: str,
        device_data: dict[str, Any],
        display_name: str | None,
        keys: dict[str, Any],
    ) -> str:
        """Create the device with its keys (`keys`: a /keys/upload body) and
        make it the user's dehydrated device, deleting the previous one. A
        refused upload leaves the previous device in place."""
        previous = await self._store.get(user_id)
        if previous is not None and previous.device_id == device_id:
            # The same id again: the old keys must not linger under it.
            await self._sessions.delete_devices(user_id, [device_id])
            previous = None
        if not await self._sessions.create_device(user_id, device_id, display_name):
            raise invalid_param("A device with this id already exists")
        try:
            await self._keys.upload(Requester(user_id, device_id, 0), keys)
        except MatrixError:
            await self._sessions.delete_devices(user_id, [device_id])
            raise
        await self._store.put(user_id, device_id, encode_canonical_json(device_data).decode())
        if previous is not None:
            await self._sessions.delete_devices(user_id, [previous.device_id])
        return device_id

    async def delete(self, user_id: str) -> str:
        found = await self._store.get(user_id)
        if found is None:
            raise not_found("No dehydrated device available")
        await self._sessions.delete_devices(user_id, [found.device_id])
        return found.device_id

    async def events(
        self, user_id: str, device_id: str, since: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The dehydrated device's to-device messages after `since` (a
        previous `next_batch`: those up to it are deleted, as the client has
        them), oldest first, and the next `next_batch`."""
        found = await self._store.get(user_id)
        if found is None or found.device_id != device_id:
            raise forbidden("You may only fetch messages for your dehydrated device")
        now = self._notifier.positions.get("to_device", 0)
        acknowledged = min(since or 0, now)
        messages = await self._to_device.acknowledge_and_read(
            user_id, device_id, acknowledged, now, min(limit, MAX_EVENTS)
        )
        next_batch = messages[-1].stream_id if messages else acknowledged
        return [
            {"type": m.type, "sender": m.sender, "content": json.loads(m.content_json)}
            for m in messages
        ], next_batch
