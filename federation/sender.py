"""The outbound federation sender: what this server tells other servers.

New local events are learnt by following the events stream from a stored
position, as /sync does; the room service never calls in here. Each batch of
new events costs a bounded number of queries: the events, the servers in
their rooms, and one transaction that records what each destination is owed
together with the new position. Events then go to one queue per destination
(queue.py), which sends transactions, backs off and catches up.

EDUs come from the services' listeners (in a cluster, from the streams every
process writes: homeserver/cluster/ephemeral_follower.py): typing, public
read receipts and presence go to the servers sharing the room or a room with
the user; device list and signing key updates are stored in an outbox first,
as are to-device messages (by the to-device service), so that they survive a
restart and are deleted only once delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from federation.backoff import Backoff
from federation.edus import (
    Edu,
    device_list_update,
    presence_edu,
    receipt_edu,
    signing_key_update,
    typing_edu,
)
from federation.queue import DestinationQueue
from federation.room_servers import RoomServers
from federation.transport import FederationClient
from homeserver.e2e.changes import DeviceKeysChanged, KeyChange
from homeserver.identifiers import split_user_id
from homeserver.notifier import Notifier
from storage.e2e_keys import E2eKeyStore
from storage.federation_sender import FederationSenderStore, OutgoingEvent
from storage.presence import PresenceRow
from storage.receipts import Receipt
from storage.sessions import SessionStore

logger = logging.getLogger(__name__)

EVENTS_STREAM = "events"
TO_DEVICE_STREAM = "to_device"
# Local events read from the stream per batch.
BATCH_SIZE = 500
# After an unexpected error while following the stream, try again this much later.
ERROR_RETRY_S = 5.0
# How long shutdown waits for transactions in flight.
STOP_TIMEOUT_S = 10.0
# Batches that owe nothing to anyone (no other server in the rooms) do not
# write the position, unless it moved this far: a restart re-reads at most
# this much, and a server without federation pays no write per event.
POSITION_WRITE_INTERVAL = 10_000


def _server_of(user_id: str) -> str | None:
    parts = split_user_id(user_id)
    return parts[1] if parts is not None else None


def _affected_server(event: OutgoingEvent) -> str | None:
    """The server of a member a leave, kick or ban is about: it must hear of
    it even though its user is no longer joined. (Invites and knocks go
    through their own handshakes.)"""
    pdu = event.pdu
    if pdu.get("type") != "m.room.member" or not isinstance(pdu.get("state_key"), str):
        return None
    content = pdu.get("content")
    membership = content.get("membership") if isinstance(content, dict) else None
    return _server_of(pdu["state_key"]) if membership in ("leave", "ban") else None


class FederationSender:
    def __init__(
        self,
        *,
        server_name: str,
        store: FederationSenderStore,
        notifier: Notifier,
        client: FederationClient,
        backoff: Backoff,
        e2e_keys: E2eKeyStore,
        sessions: SessionStore,
        owns: Callable[[str], bool] | None = None,
        outbox_stored: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        """`owns`: whether a destination is this sender's, when several
        senders (the shards of a deployment's federation_sender workers)
        share the destinations; None: all of them. `outbox_stored`: told
        the destinations of EDUs this process stored in the outbox, for the
        shard holder in another process (homeserver/cluster/outbox_wakes.py)."""
        self._server_name = server_name
        self._store = store
        self._notifier = notifier
        self._client = client
        self._backoff = backoff
        self._e2e_keys = e2e_keys
        self._sessions = sessions
        self._queues: dict[str, DestinationQueue] = {}
        # The servers of the rooms of the events read, followed from them.
        self._room_servers = RoomServers(store, server_name)
        # How far the events and to-device streams have been read.
        self._position = 0
        self._stored_position = 0
        self._to_device_position = 0
        self._moved = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        # EDU lookups in flight (each a query for the servers to send to).
        self._edu_tasks: set[asyncio.Task[None]] = set()
        # Until started: the listeners' EDUs are not this sender's to send.
        self._stopping = True
        self._listening = False
        self._owns = owns
        self._owned: dict[str, bool] = {}
        self._outbox_stored = outbox_stored

    async def start(self) -> None:
        """Resume from the stored position; catch up destinations left behind.
        A sender may start again after a stop (a worker that lost and took
        back its lease): it begins afresh from what is stored."""
        self._stopping = False
        self._queues.clear()
        self._position = self._stored_position = await self._store.start_position(
            self._notifier.positions.get(EVENTS_STREAM, 0)
        )
        self._to_device_position = self._notifier.positions.get(TO_DEVICE_STREAM, 0)
        for destination in await self._store.destinations_with_work():
            if destination != self._server_name and self._mine(destination):
                self._queue(destination, catching_up=True).wake()
        if not self._listening:
            self._notifier.add_stream_listener(self._stream_moved)
            self._listening = True
        self._moved.set()
        self._follower = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop reading; finish (or abandon) the transactions in flight.
        Nothing is lost: positions only move once a destination acknowledged."""
        self._stopping = True
        tasks = [t for t in (self._follower, *self._edu_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(q.stop(STOP_TIMEOUT_S) for q in self._queues.values()))
        if self._position > self._stored_position:
            await self._store.record_batch([], self._position)

    def _queue(self, destination: str, *, catching_up: bool = False) -> DestinationQueue:
        queue = self._queues.get(destination)
        if queue is None:
            queue = self._queues[destination] = DestinationQueue(
                destination,
                server_name=self._server_name,
                client=self._client,
                backoff=self._backoff,
                store=self._store,
                catching_up=catching_up,
            )
        return queue

    def _stream_moved(self, stream: str, _: int) -> None:
        if stream in (EVENTS_STREAM, TO_DEVICE_STREAM):
            self._moved.set()

    async def _follow(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            try:
                await self._read_events()
                await self._read_to_device()
            except Exception:
                logger.exception("federation sender failed to read the streams")
                await asyncio.sleep(ERROR_RETRY_S)
                self._moved.set()

    async def _read_events(self) -> None:
        upto = self._notifier.positions.get(EVENTS_STREAM, 0)
        while self._position < upto:
            events = await self._store.new_local_events(
                self._server_name, self._position, upto, BATCH_SIZE
            )
            end = events[-1].stream_ordering if len(events) == BATCH_SIZE else upto
            servers = await self._room_servers.for_events(events) if events else {}
            owed: dict[tuple[str, str], int] = {}
            deliveries: list[tuple[str, OutgoingEvent]] = []
            for event in events:
                destinations = {
                    server
                    for server, since in servers.get(event.room_id, {}).items()
                    if since < event.stream_ordering
                }
                affected = _affected_server(event)
                if affected is not None:
                    destinations.add(affected)
                destinations.discard(self._server_name)
                for destination in sorted(filter(self._mine, destinations)):
                    owed[(destination, event.room_id)] = event.stream_ordering
                    deliveries.append((destination, event))
            if owed or end - self._stored_position >= POSITION_WRITE_INTERVAL:
                await self._store.record_batch([(d, r, s) for (d, r), s in owed.items()], end)
                self._stored_position = end
            self._position = end
            for destination, event in deliveries:
                self._queue(destination).add_pdu(event)

    async def _read_to_device(self) -> None:
        upto = self._notifier.positions.get(TO_DEVICE_STREAM, 0)
        if upto <= self._to_device_position:
            return
        destinations = await self._store.to_device_destinations(self._to_device_position, upto)
        self._to_device_position = upto
        for destination in filter(self._mine, destinations):
            self._queue(destination).wake()

    def _mine(self, destination: str) -> bool:
        """Whether this sender sends to `destination` (remembered: asked per event)."""
        if self._owns is None:
            return True
        owned = self._owned.get(destination)
        if owned is None:
            owned = self._owned[destination] = self._owns(destination)
        return owned

    def _is_local(self, user_id: str) -> bool:
        return _server_of(user_id) == self._server_name

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run an EDU lookup in the background: listeners are called from
        request handlers and timers, which must not wait for it."""
        if self._stopping:
            return

        async def run() -> None:
            try:
                await work()
            except Exception:
                logger.exception("federation sender failed to route an EDU")

        task = asyncio.create_task(run())
        self._edu_tasks.add(task)
        task.add_done_callback(self._edu_tasks.discard)

    def _send_edu(self, destinations: Iterable[str], key: tuple[str, ...], edu: Edu) -> None:
        for destination in destinations:
            if destination != self._server_name and self._mine(destination):
                self._queue(destination).add_edu(key, edu)

    def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        """TypingService listener."""
        self.typing_changes([(room_id, user_id, typing)])

    def typing_changes(self, changes: Sequence[tuple[str, str, bool]]) -> None:
        """Typing of several (room, user), routed with one query (a cluster's
        ephemeral follower hands them over in batches)."""
        local = [c for c in changes if self._is_local(c[1])]
        if not local:
            return

        async def route() -> None:
            servers = await self._store.room_servers({room_id for room_id, _, _ in local})
            for room_id, user_id, typing in local:
                self._send_edu(
                    servers[room_id],
                    ("typing", room_id, user_id),
                    typing_edu(room_id, user_id, typing),
                )

        self._spawn(route)

    def receipt_stored(self, receipt: Receipt) -> None:
        """ReceiptService listener (public receipts only)."""
        self.receipts_stored([receipt])

    def receipts_stored(self, receipts: Sequence[Receipt]) -> None:
        """Public receipts, routed with one query (as `typing_changes`)."""
        local = [r for r in receipts if self._is_local(r.user_id)]
        if not local:
            return

        async def route() -> None:
            servers = await self._store.room_servers({r.room_id for r in local})
            for receipt in local:
                key = (
                    "receipt",
                    receipt.room_id,
                    receipt.receipt_type,
                    receipt.user_id,
                    receipt.thread_id,
                )
                self._send_edu(servers[receipt.room_id], key, receipt_edu([receipt]))

        self._spawn(route)

    def presence_changed(self, rows: list[PresenceRow]) -> None:
        """PresenceService listener."""
        local = [r for r in rows if self._is_local(r.user_id)]
        if not local:
            return

        async def route() -> None:
            servers = await self._store.servers_sharing_rooms([r.user_id for r in local])
            now = int(time.time() * 1000)
            for row in local:
                self._send_edu(
                    servers[row.user_id], ("presence", row.user_id), presence_edu([row], now)
                )

        self._spawn(route)

    async def keys_changed(self, change: KeyChange) -> None:
        """KeyChanges listener: device list and signing key updates are stored
        in the outbox before the change's request returns (also by a sender
        not running here: the one running takes them from the outbox)."""
        if not self._is_local(change.user_id):
            return
        try:
            await self._queue_key_change(change)
        except Exception:
            # The change itself is stored: its request must not fail for this.
            logger.exception("federation sender failed to queue a key change")

    async def _queue_key_change(self, change: KeyChange) -> None:
        user_id = change.user_id
        destinations = (await self._store.servers_sharing_rooms([user_id]))[user_id]
        destinations.discard(self._server_name)
        destinations = set(filter(self._mine, destinations))
        if not destinations:
            return
        if isinstance(change, DeviceKeysChanged):
            edus = await self._device_list_edus(change)
        else:
            keys = await self._e2e_keys.query_cross_signing([user_id], user_id)
            edu = signing_key_update(user_id, keys)
            edus = [edu] if edu is not None else []
        await self._store.queue_edus(
            [(d, edu.edu_type, edu.content) for d in sorted(destinations) for edu in edus]
        )
        if self._stopping:
            # Not this process's to send: tell the one that is.
            if edus and self._outbox_stored is not None:
                self._outbox_stored(destinations)
            return
        for destination in destinations:
            self._queue(destination).wake()

    def outbox_filled(self, destination: str) -> None:
        """Another process stored EDUs for `destination`: send them now if
        it is this running sender's (its queue reads the outbox)."""
        if not self._stopping and destination != self._server_name and self._mine(destination):
            self._queue(destination).wake()

    def outbox_missed(self) -> None:
        """Outbox rows may have been stored unheard (the channel between the
        processes was lost): wake every destination with stored work."""

        async def wake_all() -> None:
            for destination in await self._store.destinations_with_work():
                self.outbox_filled(destination)

        self._spawn(wake_all)

    async def _device_list_edus(self, change: DeviceKeysChanged) -> list[Edu]:
        user_id, device_ids = change.user_id, change.device_ids
        if not device_ids:
            return []
        last = await self._store.next_device_list_ids(user_id, len(device_ids))
        first = last - len(device_ids) + 1
        keys, names = {}, {}
        if not change.deleted:
            found = await self._e2e_keys.query_devices([(user_id, d) for d in device_ids])
            keys = {k.name: k for k in found}
            names = {
                d.device_id: d.display_name for d in await self._sessions.list_devices(user_id)
            }
        return [
            device_list_update(
                user_id,
                device_id,
                stream_id,
                [stream_id - 1] if stream_id > 1 else [],
                deleted=change.deleted,
                display_name=names.get(device_id),
                keys=keys.get(device_id),
            )
            for stream_id, device_id in enumerate(device_ids, start=first)
        ]
