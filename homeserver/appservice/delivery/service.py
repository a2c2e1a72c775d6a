"""AppServiceDelivery: pushes to every registered application service.

Like the federation sender, it learns of new events by following the streams
(the notifier's stream listener), never by being called from the room
service; typing and presence come from those services' listeners (in a
cluster, from homeserver/cluster/ephemeral_follower.py, which reads what
every process wrote). Each appservice with a URL has its own queue
(queue.py) reading from its own stored positions, so one that is down falls
behind alone and catches up, in order, when it is back. Appservices without
a URL get nothing.
"""

from __future__ import annotations

import bisect
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import attrs

from homeserver.appservice.delivery.builder import EVENTS, STREAMS, TransactionBuilder
from homeserver.appservice.delivery.interest import RoomInterest
from homeserver.appservice.delivery.metrics import DeliveryMetrics
from homeserver.appservice.delivery.queue import AppServiceQueue
from homeserver.notifier import Notifier
from homeserver.rooms.format import EventFormatter
from storage.appservice_delivery import AppServiceDeliveryStore
from storage.events import EventStore
from storage.presence import PresenceRow

if TYPE_CHECKING:
    from homeserver.appservice.registration import AppService

logger = logging.getLogger(__name__)

# Event stream positions remembered with the time they were announced (for
# the latency metric); older ones are forgotten.
MAX_ANNOUNCEMENTS = 100_000


class AppServiceRegistry(Protocol):
    def all(self) -> Sequence[AppService]: ...


@attrs.frozen
class AppServiceStatus:
    """What the admin API shows of one appservice's queue."""

    id: str
    url: str | None
    # Events of the stream not yet offered, plus those of the transaction in flight.
    queue_depth: int
    last_success_ts: int | None
    pending_txn_id: int | None
    failures: int
    positions: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class AppServiceDelivery:
    def __init__(
        self,
        *,
        appservices: AppServiceRegistry,
        store: AppServiceDeliveryStore,
        events: EventStore,
        formatter: EventFormatter,
        notifier: Notifier,
        typing_users: Callable[[str], list[str]],
        metrics: DeliveryMetrics,
        server_name: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._appservices = appservices
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._ssl = ssl_context
        self._interest = RoomInterest(store)
        self._builder = TransactionBuilder(
            store=store,
            events=events,
            formatter=formatter,
            interest=self._interest,
            typing_users=typing_users,
            server_name=server_name,
        )
        self._queues: dict[str, AppServiceQueue] = {}
        self._session: aiohttp.ClientSession | None = None
        # (events position, monotonic time it was announced), oldest first;
        # events at or before `_timed_after` were announced before these.
        self._announced: list[tuple[int, float]] = []
        self._timed_after = 0

    async def start(self) -> None:
        pushed = [a for a in self._appservices.all() if a.url is not None]
        if not pushed:
            return
        self._timed_after = self._notifier.positions.get(EVENTS, 0)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))
        for appservice in pushed:
            queue = AppServiceQueue(
                appservice,
                store=self._store,
                builder=self._builder,
                session=self._session,
                metrics=self._metrics,
                current=self._current,
                announced_at=self._announced_at,
            )
            await queue.start()
            self._queues[appservice.id] = queue
        self._notifier.add_stream_listener(self._stream_moved)
        self._metrics.watch_queues(self._queue_lengths)

    async def stop(self) -> None:
        """Stop sending; a transaction in flight is stored and resent on start."""
        for queue in self._queues.values():
            await queue.stop()
        if self._session is not None:
            await self._session.close()

    def wake(self, appservice_id: str) -> None:
        """Retry at once: called after the appservice answered a ping."""
        queue = self._queues.get(appservice_id)
        if queue is not None:
            queue.wake()

    def _current(self) -> Mapping[str, int]:
        return {s: self._notifier.positions.get(s, 0) for s in STREAMS}

    def _stream_moved(self, stream: str, position: int) -> None:
        if stream == EVENTS:
            self._announced.append((position, time.monotonic()))
            if len(self._announced) > 2 * MAX_ANNOUNCEMENTS:
                self._timed_after = self._announced[-MAX_ANNOUNCEMENTS - 1][0]
                del self._announced[:-MAX_ANNOUNCEMENTS]
        if stream in STREAMS:
            for queue in self._queues.values():
                queue.news()

    def _announced_at(self, stream_ordering: int) -> float | None:
        """When the first position at or past `stream_ordering` was announced
        (None for events from before the oldest announcement remembered)."""
        if stream_ordering <= self._timed_after:
            return None
        index = bisect.bisect_left(self._announced, stream_ordering, key=lambda a: a[0])
        return self._announced[index][1] if index < len(self._announced) else None

    def _queue_lengths(self) -> dict[str, int]:
        current = self._notifier.positions.get(EVENTS, 0)
        return {
            appservice_id: max(0, current - queue.positions.get(EVENTS, current))
            for appservice_id, queue in self._queues.items()
        }

    # Listeners of the ephemeral services and the room directory.

    def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        for queue in self._queues.values():
            if queue.appservice.receive_ephemeral:
                queue.ephemeral.typing_rooms.add(room_id)
                queue.news()

    def typing_changes(self, changes: Sequence[tuple[str, str, bool]]) -> None:
        """Several typing changes at once (a cluster's ephemeral follower)."""
        for room_id, user_id, typing in changes:
            self.typing_changed(room_id, user_id, typing)

    def presence_changed(self, rows: list[PresenceRow]) -> None:
        for queue in self._queues.values():
            if queue.appservice.receive_ephemeral:
                for row in rows:
                    queue.ephemeral.presence[row.user_id] = row
                queue.news()

    def aliases_changed(self, room_id: str) -> None:
        """A published alias of the room was added or removed."""
        self._interest.invalidate(room_id)

    async def statuses(self) -> list[AppServiceStatus]:
        """Every registered appservice with its queue, for the admin API."""
        appservices = self._appservices.all()
        stored = await self._store.statuses([a.id for a in appservices])
        current = self._notifier.positions.get(EVENTS, 0)
        result = []
        for appservice in appservices:
            status = stored.get(appservice.id)
            queue = self._queues.get(appservice.id)
            positions = status.positions if status is not None else {}
            behind = 0
            if appservice.url is not None and EVENTS in positions:
                behind = await self._store.events_behind(positions[EVENTS], current)
            pending_events = status.pending_events if status is not None else 0
            result.append(
                AppServiceStatus(
                    id=appservice.id,
                    url=appservice.url,
                    queue_depth=behind + pending_events,
                    last_success_ts=status.last_success_ts if status is not None else None,
                    pending_txn_id=status.pending_txn_id if status is not None else None,
                    failures=queue.failures if queue is not None else 0,
                    positions=positions,
                )
            )
        return result
