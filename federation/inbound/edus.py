"""Typing, receipt and presence EDUs from other servers.

A server speaks only for its own users: an EDU about a user of another
server is ignored, as is a receipt for a room the origin has nobody in, and
typing or receipts in a room whose server ACL denies the origin.
Each handler turns the EDU into a call of the service's narrow remote method.
"""

from __future__ import annotations

import time
from typing import Any

from federation.edu_registry import EduRegistry
from federation.edus import PRESENCE, RECEIPT, TYPING
from federation.serving import FederationReads
from homeserver.ephemeral.presence import PresenceService
from homeserver.ephemeral.receipts import READ, ReceiptService
from homeserver.ephemeral.typing import TypingService
from homeserver.errors import MatrixError
from storage.federation_reads import FederationReadStore
from storage.presence import PresenceRow


def _of(user_id: Any, origin: str) -> bool:
    return (
        isinstance(user_id, str)
        and user_id.startswith("@")
        and (user_id.partition(":")[2] == origin)
    )


class EphemeralEdus:
    def __init__(
        self,
        typing: TypingService,
        receipts: ReceiptService,
        presence: PresenceService,
        reads: FederationReads,
        read_store: FederationReadStore,
    ) -> None:
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._reads = reads
        self._read_store = read_store

    async def _allowed(self, origin: str, room_id: str) -> bool:
        try:
            await self._reads.check_acl(origin, room_id)
        except MatrixError:
            return False
        return True

    def register(self, registry: EduRegistry) -> None:
        registry.register(TYPING, self.typing)
        registry.register(RECEIPT, self.receipt)
        registry.register(PRESENCE, self.presence)

    async def typing(self, origin: str, content: dict[str, Any]) -> None:
        """{room_id, user_id, typing}."""
        room_id, user_id, typing = (
            content.get("room_id"),
            content.get("user_id"),
            content.get("typing"),
        )
        if not (isinstance(room_id, str) and _of(user_id, origin) and isinstance(typing, bool)):
            return
        if await self._allowed(origin, room_id):
            await self._typing.set_remote(room_id, user_id, typing)

    async def receipt(self, origin: str, content: dict[str, Any]) -> None:
        """{room_id: {"m.read": {user_id: {event_ids, data: {ts, thread_id?}}}}}."""
        for room_id, by_type in content.items():
            if not isinstance(by_type, dict) or not isinstance(by_type.get(READ), dict):
                continue
            if not await self._read_store.server_in_room(room_id, origin):
                continue
            if not await self._allowed(origin, room_id):
                continue
            for user_id, receipt in by_type[READ].items():
                if not _of(user_id, origin) or not isinstance(receipt, dict):
                    continue
                event_ids = receipt.get("event_ids")
                data = receipt.get("data")
                data = data if isinstance(data, dict) else {}
                ts, thread_id = data.get("ts"), data.get("thread_id")
                if not isinstance(event_ids, list) or not all(
                    isinstance(e, str) for e in event_ids
                ):
                    continue
                await self._receipts.receive_remote(
                    room_id,
                    user_id,
                    event_ids,
                    thread_id if isinstance(thread_id, str) else None,
                    ts if isinstance(ts, int) else int(time.time() * 1000),
                )

    async def presence(self, origin: str, content: dict[str, Any]) -> None:
        """{push: [{user_id, presence, last_active_ago?, status_msg?, currently_active?}]}."""
        push = content.get("push")
        if not isinstance(push, list):
            return
        now = int(time.time() * 1000)
        rows = []
        for entry in push:
            if not isinstance(entry, dict) or not _of(entry.get("user_id"), origin):
                continue
            ago = entry.get("last_active_ago")
            status_msg = entry.get("status_msg")
            rows.append(
                PresenceRow(
                    entry["user_id"],
                    entry.get("presence"),
                    status_msg if isinstance(status_msg, str) else None,
                    now - ago if isinstance(ago, int) and ago >= 0 else 0,
                    entry.get("currently_active") is True,
                )
            )
        await self._presence.set_remote(rows)
