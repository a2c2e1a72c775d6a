"""Typing notifications, receipts, read markers and presence."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.ephemeral.presence import PresenceService
from homeserver.ephemeral.receipts import FULLY_READ, RECEIPT_TYPES, ReceiptService
from homeserver.ephemeral.typing import DEFAULT_TIMEOUT_MS, TypingService
from homeserver.errors import bad_json, invalid_param, missing_param


class EphemeralApi:
    def __init__(
        self, typing: TypingService, receipts: ReceiptService, presence: PresenceService
    ) -> None:
        self._typing = typing
        self._receipts = receipts
        self._presence = presence

    @endpoint("PUT", "/rooms/{roomId}/typing/{userId}")
    async def typing(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        if "typing" not in body:
            raise missing_param("'typing' is required")
        typing = body["typing"]
        if not isinstance(typing, bool):
            raise bad_json("'typing' must be true or false")
        timeout = body.get("timeout", DEFAULT_TIMEOUT_MS)
        if typing and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
            raise bad_json("'timeout' must be a non-negative integer of milliseconds")
        await self._typing.set_typing(
            req.user, req.params["roomId"], req.params["userId"], typing, timeout
        )
        return {}

    @endpoint("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}")
    async def receipt(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        # null counts as absent (unthreaded): matrix-nio sends it so.
        thread_id = body.get("thread_id")
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
            raise invalid_param("thread_id field must be a non-empty string")
        p = req.params
        await self._receipts.send_receipt(
            req.user, p["roomId"], p["receiptType"], p["eventId"], thread_id
        )
        return {}

    @endpoint("POST", "/rooms/{roomId}/read_markers")
    async def read_markers(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        markers = {}
        for key in (FULLY_READ, *RECEIPT_TYPES):
            event_id = opt_str(body, key)
            if event_id:
                markers[key] = event_id
        await self._receipts.set_read_markers(req.user, req.params["roomId"], markers)
        return {}

    @endpoint("PUT", "/presence/{userId}/status")
    async def set_presence(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        await self._presence.set_status(
            req.user, req.params["userId"], req_str(body, "presence"), opt_str(body, "status_msg")
        )
        return {}

    @endpoint("GET", "/presence/{userId}/status")
    async def get_presence(self, req: ClientRequest) -> dict[str, Any]:
        return await self._presence.get_status(req.user, req.params["userId"])
