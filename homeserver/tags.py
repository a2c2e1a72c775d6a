"""Room tags: the m.tag room account data, edited one tag at a time.

Stored as account data so that /sync delivers them with the rest of the
room's account data. Edits of one user's tags on one room are serialised
(read, change, write), so two clients tagging at once both win.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.errors import bad_json, forbidden, invalid_param
from homeserver.identifiers import is_valid_room_id
from storage.account_data import AccountDataStore

TAG = "m.tag"
# Synapse's bound on a tag name.
MAX_TAG_LENGTH = 255


class TagService:
    def __init__(self, account_data: AccountDataService, store: AccountDataStore) -> None:
        self._account_data = account_data
        self._store = store
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @staticmethod
    def _check(requester_id: str, user_id: str, room_id: str) -> None:
        if requester_id != user_id:
            raise forbidden("Cannot access another user's tags")
        if not is_valid_room_id(room_id):
            raise invalid_param("Invalid room id")

    async def _tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        content = await self._store.get(user_id, room_id, TAG)
        tags = json.loads(content).get("tags") if content is not None else None
        return tags if isinstance(tags, dict) else {}

    async def get(self, requester_id: str, user_id: str, room_id: str) -> dict[str, Any]:
        """{tag: its content} of the room for this user."""
        self._check(requester_id, user_id, room_id)
        return await self._tags(user_id, room_id)

    async def put(
        self, requester_id: str, user_id: str, room_id: str, tag: str, content: dict[str, Any]
    ) -> None:
        """Add or replace a tag; `order`, if given, must be a number."""
        self._check(requester_id, user_id, room_id)
        if not tag or len(tag.encode()) > MAX_TAG_LENGTH:
            raise invalid_param(f"A tag name must be 1 to {MAX_TAG_LENGTH} bytes long")
        order = content.get("order")
        if "order" in content and (not isinstance(order, int | float) or isinstance(order, bool)):
            raise bad_json("'order' must be a number")
        await self._edit(user_id, room_id, tag, content)

    async def delete(self, requester_id: str, user_id: str, room_id: str, tag: str) -> None:
        """Remove a tag; removing one the room does not have is not an error."""
        self._check(requester_id, user_id, room_id)
        await self._edit(user_id, room_id, tag, None)

    async def _edit(
        self, user_id: str, room_id: str, tag: str, content: dict[str, Any] | None
    ) -> None:
        key = (user_id, room_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            tags = await self._tags(user_id, room_id)
            if content is None:
                if tag not in tags:
                    return
                del tags[tag]
            else:
                tags[tag] = content
            await self._account_data.put_unchecked(user_id, room_id, TAG, {"tags": tags})
