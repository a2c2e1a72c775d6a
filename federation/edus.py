"""The EDUs this server sends, shaped as the server-server spec gives them.

Pure functions from what the services report to EDU contents; the sender
decides where they go.
"""

from __future__ import annotations

from typing import Any

import attrs

from homeserver.e2e.signing import loads, with_signatures
from homeserver.ephemeral.presence import presence_content
from storage.e2e_keys import SignedKey
from storage.presence import PresenceRow
from storage.receipts import UNTHREADED, Receipt

TYPING = "m.typing"
RECEIPT = "m.receipt"
PRESENCE = "m.presence"
DIRECT_TO_DEVICE = "m.direct_to_device"
DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"


@attrs.frozen
class Edu:
    edu_type: str
    content: dict[str, Any]

    def json(self) -> dict[str, Any]:
        return {"edu_type": self.edu_type, "content": self.content}


def typing_edu(room_id: str, user_id: str, typing: bool) -> Edu:
    return Edu(TYPING, {"room_id": room_id, "user_id": user_id, "typing": typing})


def receipt_edu(receipts: list[Receipt]) -> Edu:
    """One m.receipt for many receipts: {room: {type: {user: {event_ids, data}}}}."""
    content: dict[str, Any] = {}
    for r in receipts:
        data: dict[str, Any] = {"ts": r.ts}
        if r.thread_id != UNTHREADED:
            data["thread_id"] = r.thread_id
        by_type = content.setdefault(r.room_id, {}).setdefault(r.receipt_type, {})
        by_type[r.user_id] = {"event_ids": [r.event_id], "data": data}
    return Edu(RECEIPT, content)


def presence_edu(rows: list[PresenceRow], now_ms: int) -> Edu:
    """One m.presence pushing the current presence of several users."""
    return Edu(
        PRESENCE,
        {"push": [{"user_id": r.user_id, **presence_content(r, now_ms)} for r in rows]},
    )


def device_list_update(
    user_id: str,
    device_id: str,
    stream_id: int,
    prev_ids: list[int],
    *,
    deleted: bool = False,
    display_name: str | None = None,
    keys: SignedKey | None = None,
) -> Edu:
    """m.device_list_update for one device: deleted, or its name and keys."""
    content: dict[str, Any] = {
        "user_id": user_id,
        "device_id": device_id,
        "stream_id": stream_id,
        "prev_id": prev_ids,
        "deleted": deleted,
    }
    if not deleted:
        if display_name is not None:
            content["device_display_name"] = display_name
        if keys is not None:
            content["keys"] = with_signatures(loads(keys.key_json), keys.signatures)
    return Edu(DEVICE_LIST_UPDATE, content)


def signing_key_update(user_id: str, keys: list[SignedKey]) -> Edu | None:
    """m.signing_key_update with the user's public cross-signing keys (master
    and self-signing; the user-signing key is private to its owner)."""
    content: dict[str, Any] = {"user_id": user_id}
    for key in keys:
        if key.name in ("master", "self_signing"):
            content[f"{key.name}_key"] = with_signatures(loads(key.key_json), key.signatures)
    return Edu(SIGNING_KEY_UPDATE, content) if len(content) > 1 else None
