"""Room writes go to the room's owner, whichever process received them.

In a deployment each room is owned by one event persister (cluster/roles.py
`owner_of`: rendezvous hashing of the room id over the persisters that are
up), so that one process writes a room and keeps its caches warm. A process
asked to send an event into a room it does not own hands the send to the
owner over the internal API (api/internal.py: shared secret, internal
listener only) and returns the owner's answer, errors included. The
transaction id travels with it and is checked by the owner under the room's
lock, so a retried request is answered with the first event wherever it
lands.

Ownership is a preference, not what keeps a room consistent: every write
takes the room's PostgreSQL advisory lock and reads the room's head under
it, so two processes writing one room at a handover (an owner that died and
one taking over) serialise in the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import aiohttp

from homeserver.errors import MatrixError
from homeserver.events.event import parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from storage.events import StoredEvent

logger = logging.getLogger(__name__)

INTERNAL_PREFIX = "/_homeserver/internal/v1"
# How long a forwarded send may wait for a room's owner (one that died is
# replaced within the persisters' liveness check).
OWNER_WAIT_S = 15.0
_RETRY_S = 0.25


class LocalSend(Protocol):
    """EventPipeline.send: build, authorise and persist a local event here."""

    def __call__(
        self,
        room_id: str,
        *,
        type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        txn: tuple[str, str] | None = None,
        origin_server_ts: int | None = None,
    ) -> Awaitable[StoredEvent]: ...


def stored_to_json(stored: StoredEvent) -> dict[str, Any]:
    return {
        "pdu": stored.event.pdu,
        "room_version": stored.event.room_version.identifier,
        "stream_ordering": stored.stream_ordering,
        "state_group": stored.state_group,
        "replaces_state": stored.replaces_state,
        "rejected_reason": stored.rejected_reason,
        "txn_device_id": stored.txn_device_id,
        "txn_id": stored.txn_id,
    }


def stored_from_json(body: Mapping[str, Any]) -> StoredEvent:
    """The owner's answer; its PDU is checked like any other (a wrong
    secret's or a confused peer's answer is refused, not stored)."""
    room_version = KNOWN_ROOM_VERSIONS[body["room_version"]]
    return StoredEvent(
        parse_event(body["pdu"], room_version),
        int(body["stream_ordering"]),
        body["state_group"],
        body["replaces_state"],
        body["rejected_reason"],
        body["txn_device_id"],
        body["txn_id"],
    )


class RoomOwners(Protocol):
    def owner(self, room_id: str) -> str | None:
        """The worker that owns the room now; None: this process."""

    def address(self, worker: str) -> str:
        """Where the worker's internal API listens ("host:port")."""

    def unreachable(self, worker: str) -> None:
        """A forward to the worker failed to connect: look at who is up again."""


class RoomWriteForwarder:
    """EventPipeline.send as the deployment sees it: here when this process
    owns the room, at the owner otherwise."""

    def __init__(self, local_send: LocalSend, owners: RoomOwners, *, secret: str) -> None:
        self._local_send = local_send
        self._owners = owners
        self._secret = secret
        self._session: aiohttp.ClientSession | None = None
        self.forwarded = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        room_id: str,
        *,
        type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        txn: tuple[str, str] | None = None,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        args: dict[str, Any] = {
            "type": type,
            "sender": sender,
            "content": content,
            "state_key": state_key,
            "redacts": redacts,
            "txn": txn,
            "origin_server_ts": origin_server_ts,
        }
        deadline = time.monotonic() + OWNER_WAIT_S
        while True:
            owner = self._owners.owner(room_id)
            if owner is None:
                return await self._local_send(room_id, **args)
            try:
                return await self._forward(owner, room_id, args)
            except aiohttp.ClientConnectionError as e:
                # Dead or restarting: once it is known down another owns the
                # room. The send did not reach it, or reached it and its
                # answer was lost: the transaction id makes a retry safe.
                if time.monotonic() >= deadline:
                    raise MatrixError(
                        503, "M_UNKNOWN", "The room's writer cannot be reached; try again"
                    ) from e
                logger.warning("room %s: owner %s unreachable (%s); retrying", room_id, owner, e)
                self._owners.unreachable(owner)
                await asyncio.sleep(_RETRY_S)

    async def _forward(self, owner: str, room_id: str, args: dict[str, Any]) -> StoredEvent:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        body = {"room_id": room_id, **args, "txn": list(args["txn"]) if args["txn"] else None}
        url = f"http://{self._owners.address(owner)}{INTERNAL_PREFIX}/send_event"
        async with self._session.post(
            url, json=body, headers={"Authorization": f"Bearer {self._secret}"}
        ) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
        if not isinstance(answer, dict):
            raise MatrixError(502, "M_UNKNOWN", f"The room's writer answered {response.status}")
        self.forwarded += 1
        if response.status != 200:
            raise MatrixError(
                response.status,
                answer.get("errcode", "M_UNKNOWN"),
                answer.get("error", "The room's writer refused the event"),
                **{k: v for k, v in answer.items() if k not in ("errcode", "error")},
            )
        return stored_from_json(answer)
