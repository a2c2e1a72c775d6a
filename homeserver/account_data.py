"""Per-user account data, global and per room."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from canonicaljson import encode_canonical_json

from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.identifiers import is_valid_room_id
from homeserver.notifier import Notifier
from homeserver.sync.filter import event_allowed
from homeserver.sync.response import SyncRequest, room_entry
from storage.account_data import AccountDataStore
from storage.rooms import RoomStore

# The server keeps these itself; clients change them through other endpoints.
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
# How deleted account data is stored (MSC3391): empty content, as setting
# `{}` through PUT also means deletion.
DELETED = "{}"


class AccountDataService:
    """Account data, and its part of /sync (global, and per joined room)."""

    # An incremental sync carries only the account data changed in its range.
    sync_streams = ("account_data",)

    def __init__(self, store: AccountDataStore, notifier: Notifier, rooms: RoomStore) -> None:
        self._store = store
        self._notifier = notifier
        self._rooms = rooms
        # Told (user, room or '', type, content) after each write: settings
        # kept in memory (invite_permission.py).
        self._listeners: list[Callable[[str, str, str, dict[str, Any]], None]] = []

    def add_listener(self, listener: Callable[[str, str, str, dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        self._notifier.notify("account_data", await self._store.current_position())

    @staticmethod
    def _check_access(requester_id: str, user_id: str, room_id: str) -> None:
        if requester_id != user_id:
            raise forbidden("Cannot access another user's account data")
        if room_id and not is_valid_room_id(room_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room id")

    async def put(
        self, requester_id: str, user_id: str, room_id: str, data_type: str, content: Any
    ) -> None:
        self._check_access(requester_id, user_id, room_id)
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API")
        if not isinstance(content, dict):
            raise bad_json("Account data content must be a JSON object")
        if not content:
            # MSC3391: setting `{}` is a deletion (as in Synapse).
            await self.delete(requester_id, user_id, room_id, data_type)
            return
        await self.put_unchecked(user_id, room_id, data_type, content)

    async def delete(self, requester_id: str, user_id: str, room_id: str, data_type: str) -> None:
        """Delete account data (MSC3391).

        As Synapse does, a deletion is stored as empty content: it then moves
        on the account data stream like any change, so /sync and sliding sync
        tell the user's other clients with an event whose content is `{}`.
        Deleting what does not exist succeeds and changes nothing."""
        self._check_access(requester_id, user_id, room_id)
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot delete {data_type} through this API")
        if await self._store.get(user_id, room_id, data_type) in (None, DELETED):
            return
        await self.put_unchecked(user_id, room_id, data_type, {})

    async def put_unchecked(
        self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> int:
        """Store account data the server itself manages (m.fully_read, tags, ...)."""
        encoded = encode_canonical_json(content).decode()
        async with self._notifier.writing("account_data"):
            position = await self._store.put(user_id, room_id, data_type, encoded)
        for listener in self._listeners:
            listener(user_id, room_id, data_type, content)
        self._notifier.notify("account_data", position, users=[user_id])
        return position

    async def get(
        self, requester_id: str, user_id: str, room_id: str, data_type: str
    ) -> dict[str, Any]:
        self._check_access(requester_id, user_id, room_id)
        content = await self._store.get(user_id, room_id, data_type)
        if content is None or content == DELETED:
            raise not_found("Account data not found")
        return json.loads(content)

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """Global account data into response["account_data"], room account data
        into the entries of joined rooms; everything on an initial sync."""
        changes = await self._store.changed_between(
            request.user_id,
            request.since_position("account_data") if not request.full_state else 0,
            request.now["account_data"],
        )
        if not changes:
            return
        global_filter = request.filter.get("account_data", {})
        room_filter = request.filter.get("room", {}).get("account_data", {})
        joined = None
        global_events = []
        for room_id, data_type, content in changes:
            if not room_id:
                if event_allowed(global_filter, data_type):
                    global_events.append({"type": data_type, "content": json.loads(content)})
                continue
            if not event_allowed(room_filter, data_type, room_id=room_id):
                continue
            if joined is None:
                joined = set(await request.rooms(self._rooms))
            if room_id in joined:
                entry = room_entry(response, "join", room_id)
                entry.setdefault("account_data", {"events": []})["events"].append(
                    {"type": data_type, "content": json.loads(content)}
                )
        if global_events:
            response["account_data"] = {"events": global_events}
