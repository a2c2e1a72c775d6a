"""Per-user account data, global and per room."""

from __future__ import annotations

import json
from typing import Any

from canonicaljson import encode_canonical_json

from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.identifiers import is_valid_room_id

# The server keeps these itself; clients change them through other endpoints.
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})


class AccountDataService:
    def __init__(self, store: Any) -> None:
        self._store = store

    @staticmethod
    def _check_access(requester_id: str, user_id: str, room_id: str) -> None:
        if requester_id != user_id:
            raise forbidden("Cannot access another user's account data")
        if room_id and not is_valid_room_id(room_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room id")

    async def put(
        self, requester_id: str, user_id: str, room_id: str, data_type: str, content: Any
    ) -> int:
        self._check_access(requester_id, user_id, room_id)
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API")
        if not isinstance(content, dict):
            raise bad_json("Account data content must be a JSON object")
        encoded = encode_canonical_json(content).decode()
        return await self._store.put(user_id, room_id, data_type, encoded)

    async def get(
        self, requester_id: str, user_id: str, room_id: str, data_type: str
    ) -> dict[str, Any]:
        self._check_access(requester_id, user_id, room_id)
        content = await self._store.get(user_id, room_id, data_type)
        if content is None:
            raise not_found("Account data not found")
        return json.loads(content)
