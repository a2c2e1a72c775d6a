"""Send-to-device messaging, and its part of /sync.

A send stores one message per recipient device at one position of the
"to_device" stream. A device's /sync delivers its messages up to the
response's position and keeps them: they are deleted only when a later
/sync of that device starts from a token at or past them, which proves the
client received that response. So a message appears in every response until
one is acknowledged, and never after.

At most `MAX_PER_SYNC` messages go in one response. When more are waiting,
the response's token stops at the last one delivered, so the next /sync
starts right after it and the rest follow; that is why this provider may
lower the to_device position of `next_batch`.

Messages for users of other servers are stored in an outbox per destination
server; the federation sender delivers them and deletes them once delivered.
Messages from other servers (m.direct_to_device EDUs) are delivered like
local ones, once per sender and message_id.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from typing import Any

from canonicaljson import encode_canonical_json

from homeserver.config import RequestLimits
from homeserver.ephemeral.common import StreamPublisher
from homeserver.errors import bad_json, invalid_param, missing_param
from homeserver.identifiers import is_valid_user_id, split_user_id
from homeserver.request_limits import DEFAULT_LIMITS, check_count
from homeserver.requester import Requester
from homeserver.sync.response import SyncRequest
from homeserver.sync.token import SyncToken
from storage.to_device import LocalMessage, RemoteMessages, ToDeviceStore

STREAM = "to_device"
MAX_PER_SYNC = 100
ALL_DEVICES = "*"
# How long the message ids received from other servers are remembered: far
# longer than any server retries a transaction.
REMEMBER_RECEIVED_MS = 7 * 24 * 3600 * 1000
# Devices whose inbox is known empty up to a position, kept in memory (about
# 150 bytes each, least recently synced dropped first).
MAX_EMPTY_INBOXES = 100_000


def _encode(value: Any) -> str:
    return encode_canonical_json(value).decode()


class ToDeviceService:
    def __init__(
        self,
        store: ToDeviceStore,
        publisher: StreamPublisher,
        *,
        server_name: str,
        limits: RequestLimits = DEFAULT_LIMITS,
    ) -> None:
        self._store = store
        self._limits = limits
        self._publisher = publisher
        self._server_name = server_name
        # (user, device) -> a position up to which the device has no message
        # stored: learnt from a /sync that found none. Such a device's next
        # /sync needs no query while the stream has not moved for its user.
        self._empty_up_to: OrderedDict[tuple[str, str], int] = OrderedDict()

    async def start(self) -> None:
        await self._publisher.start()

    async def send(
        self, requester: Requester, event_type: str, txn_id: str, body: dict[str, Any]
    ) -> None:
        """PUT /sendToDevice: {messages: {user id: {device id or "*": content}}}.

        Validated whole before anything is stored. A repeated transaction id
        of the same device is accepted and stores nothing.
        """
        if "messages" not in body:
            raise missing_param("'messages' is required")
        messages = body["messages"]
        if not isinstance(messages, dict):
            raise bad_json("'messages' must be an object of user ids")
        count = sum(len(d) if isinstance(d, dict) else 1 for d in messages.values())
        check_count(count, self._limits.max_messages_per_to_device, "to-device messages")
        local: list[LocalMessage] = []
        remote: dict[str, dict[str, dict[str, Any]]] = {}
        for user_id, devices in messages.items():
            parts = split_user_id(user_id)
            if parts is None or not is_valid_user_id(user_id):
                raise invalid_param(f"Invalid user id {user_id!r}")
            if not isinstance(devices, dict):
                raise bad_json(f"messages.{user_id} must be an object of device ids")
            for device_id, content in devices.items():
                if not isinstance(content, dict):
                    raise bad_json(f"messages.{user_id}.{device_id} must be an object")
            server = parts[1]
            if server == self._server_name:
                local.extend(LocalMessage(user_id, d, _encode(c)) for d, c in devices.items())
            elif devices:
                remote.setdefault(server, {})[user_id] = devices
        outgoing = [
            RemoteMessages(server, secrets.token_urlsafe(16), _encode(users))
            for server, users in remote.items()
        ]
        position = await self._publisher.allocate()
        recipients: set[str] | None = None
        try:
            recipients = await self._store.send(
                position,
                requester.user_id,
                requester.device_id,
                txn_id,
                event_type,
                local,
                outgoing,
            )
        finally:
            self._publisher.publish(position, recipients is not None, users=recipients or ())

    async def receive(self, origin: str, content: dict[str, Any]) -> None:
        """An m.direct_to_device EDU from another server: its messages for our
        users' devices ("*": all of a user's devices), delivered once even if
        the EDU comes again. A malformed EDU, or one whose sender is not of
        `origin`, is dropped whole."""
        sender, event_type = content.get("sender"), content.get("type")
        message_id, messages = content.get("message_id"), content.get("messages")
        parts = split_user_id(sender) if isinstance(sender, str) else None
        if parts is None or parts[1] != origin or not isinstance(event_type, str):
            return
        if not isinstance(message_id, str) or not isinstance(messages, dict):
            return
        local: list[LocalMessage] = []
        for user_id, devices in messages.items():
            user_parts = split_user_id(user_id)
            if user_parts is None or user_parts[1] != self._server_name:
                continue
            if not isinstance(devices, dict):
                return
            for device_id, message in devices.items():
                if not isinstance(message, dict):
                    return
                local.append(LocalMessage(user_id, device_id, _encode(message)))
        if not local:
            return
        position = await self._publisher.allocate()
        recipients: set[str] | None = None
        now_ms = int(time.time() * 1000)
        try:
            recipients = await self._store.receive(
                position,
                sender,
                message_id,
                event_type,
                local,
                now_ms,
                now_ms - REMEMBER_RECEIVED_MS,
            )
        finally:
            self._publisher.publish(position, recipients is not None, users=recipients or ())

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """The syncing device's messages up to `now`, acknowledging those up to `since`."""
        device_id = request.requester.device_id
        if not device_id:
            return
        now = request.now[STREAM]
        acknowledged = min(request.since_position(STREAM), now)
        device = (request.user_id, device_id)
        empty_up_to = self._empty_up_to.pop(device, None)
        if empty_up_to is not None and empty_up_to >= acknowledged and request.quiet(STREAM):
            # Nothing stored up to the token, and nothing sent to the user since.
            self._remember_empty(device, now)
            return
        messages = await self._store.acknowledge_and_read(
            request.user_id, device_id, acknowledged, now, MAX_PER_SYNC
        )
        if not messages:
            # Those up to the token were deleted, and none came after it.
            self._remember_empty(device, now)
            return
        response["to_device"] = {
            "events": [
                {"type": m.type, "sender": m.sender, "content": json.loads(m.content_json)}
                for m in messages
            ]
        }
        if len(messages) == MAX_PER_SYNC:
            # Perhaps more are waiting: the next sync must start after the last one sent.
            positions = {**request.now.positions, STREAM: messages[-1].stream_id}
            response["next_batch"] = str(SyncToken(positions))

    def _remember_empty(self, device: tuple[str, str], position: int) -> None:
        self._empty_up_to[device] = position
        if len(self._empty_up_to) > MAX_EMPTY_INBOXES:
            self._empty_up_to.popitem(last=False)
