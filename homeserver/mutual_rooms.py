"""Rooms in common with another user (MSC2666; spec after v1.19,
`GET /_matrix/client/v1/mutual_rooms`).

Paged as Synapse pages it, 100 rooms a batch in room id order: `next_batch`
is the last room id of the batch in unpadded URL-safe base64, and the next
batch starts after that id (so rooms joined meanwhile with smaller ids show up
only on a new first request, which clients make each time they need the
list). The MSC caps tokens at 255 characters: a token holds at most the
first 191 bytes of the id, and the next batch starts after every room id with
that prefix (room ids that long do not occur in practice). `count` is the
number of mutual rooms in all.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from typing import Any

from homeserver.errors import invalid_param
from homeserver.identifiers import is_valid_user_id
from homeserver.requester import Requester
from storage.mutual_rooms import MutualRoomStore

BATCH = 100
# 191 bytes are 255 characters of unpadded base64.
_TOKEN_BYTES = 191


def _encode(room_id: str) -> str:
    raw = room_id.encode()
    while len(raw) > _TOKEN_BYTES:
        room_id = room_id[:-1]
        raw = room_id.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        room_id = raw.decode()
    except (binascii.Error, ValueError):
        raise invalid_param("Malformed 'from' token") from None
    if not room_id.startswith("!") or _encode(room_id) != token:
        raise invalid_param("Malformed 'from' token")
    return room_id


class MutualRooms:
    def __init__(self, store: MutualRoomStore) -> None:
        self._store = store

    async def mutual_rooms(
        self, requester: Requester, user_id: str, from_token: str | None
    ) -> dict[str, Any]:
        if not is_valid_user_id(user_id):
            raise invalid_param("Invalid user_id")
        if user_id == requester.user_id:
            raise invalid_param("You cannot ask for the rooms you share with yourself")
        after = _decode(from_token) if from_token else None
        rooms = await self._store.mutual_rooms(requester.user_id, user_id)
        start = 0
        if after is not None:
            start = bisect.bisect_right(rooms, after)
            while start < len(rooms) and rooms[start].startswith(after):
                start += 1
        batch = rooms[start : start + BATCH]
        body: dict[str, Any] = {"joined": batch, "count": len(rooms)}
        if start + BATCH < len(rooms):
            body["next_batch"] = _encode(batch[-1])
        return body
