"""Sending delayed events when they are due, exactly once.

One background task sleeps until the earliest send time (woken when an event
is scheduled or restarted), claims the due rows (scheduled -> sending, one
conditional UPDATE with SKIP LOCKED) and sends them in order of their send
time. Exactly once: the event goes through the room service with the delay id
as its transaction id (`DELAYED_TXN_DEVICE`), and the pipeline's transaction
idempotency answers a second send of the same id with the event already
stored. A process that stops between claiming and marking the row sent
leaves it 'sending'; at start-up every such claim is taken up again at once
(and later, any claim older than STALE_CLAIM_MS), so the event is neither lost
nor doubled. Due events are sent at start-up at once.

It is also the pipeline commit hook that cancels a scheduled delayed state
event when another user sets the same state meanwhile (as Synapse does: the
owner's own state changes do not cancel it, so Element Call's pattern of
setting its membership and keeping a delayed "leave" for it works).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from homeserver.delayed_events import DELAYED_TXN_DEVICE
from homeserver.errors import MatrixError
from homeserver.events.event import Event
from homeserver.ratelimit import RateLimiter
from homeserver.requester import Requester
from homeserver.rooms.service import FakeAccepted, RoomService
from storage.database import now_ms
from storage.delayed_events import DelayedEvent, DelayedEventStore
from storage.events import EventStore

logger = logging.getLogger(__name__)

# Rows claimed per query, so a backlog never holds much at once.
BATCH = 100
# A claim this old belongs to a send that did not finish (its process
# stopped, or the database went away): it is taken up again.
STALE_CLAIM_MS = 60_000
# How long the task waits after a failure of its own before it tries again.
RETRY_S = 5.0
# Finalised delayed events are kept this long, and at most this many per
# user (the MSC's recommendation), for retried actions and look-ups.
RETENTION_MS = 7 * 24 * 60 * 60 * 1000
RETENTION_PER_USER = 1000
PURGE_EVERY_MS = 60 * 60 * 1000


class DelayedEventScheduler:
    def __init__(
        self,
        store: DelayedEventStore,
        rooms: RoomService,
        events: EventStore,
        write_limiter: RateLimiter | None = None,
    ) -> None:
        self._store = store
        self._rooms = rooms
        self._events = events
        # The per-user limit on writes, applied again when a due event is
        # sent (the MSC: else events scheduled for one moment get past it).
        self._write_limiter = write_limiter
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0

    def wake(self) -> None:
        """Look again at the schedule (an event was scheduled or restarted)."""
        self._wake.set()

    def start(self) -> None:
        """Start sending: first what came due while the server was down (and
        the sends a previous process claimed but did not finish), at once."""
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def send(self, row: DelayedEvent, *, reason: str) -> str | None:
        """Put a claimed row's event into the room and mark it sent; return
        the event id, or None when it was cancelled instead because another
        user set its state meanwhile. A MatrixError (the room refused it) is
        raised with the row still claimed, for the caller to decide."""
        if row.state_key is not None and await self._overwritten(row):
            await self._store.mark_overwritten(row.delay_id, now_ms())
            return None
        requester = Requester(row.user_id, DELAYED_TXN_DEVICE, 0)
        try:
            stored = await self._rooms.send_event(
                requester,
                row.room_id,
                row.event_type,
                row.content,
                state_key=row.state_key,
                txn_id=row.delay_id,
                origin_server_ts=row.origin_server_ts,
            )
            event_id = stored.event.event_id
        except FakeAccepted as accepted:
            # A shadow-banned sender: it looks sent, as for any of its events.
            event_id = str(accepted.to_json()["event_id"])
        await self._store.mark_sent(row.delay_id, event_id, reason, now_ms())
        return event_id

    async def _overwritten(self, row: DelayedEvent) -> bool:
        """Whether another user's event replaced the state since it was
        scheduled: the commit hook cancels those at once, this catches the
        ones it missed (the process stopped in between)."""
        assert row.state_key is not None
        current = await self._events.current_state_event_id(
            row.room_id, row.event_type, row.state_key
        )
        if current is None or current == row.state_event_id:
            return False
        stored = (await self._events.get_events([current])).get(current)
        return stored is not None and stored.event.sender != row.user_id

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: another user set a state that delayed state
        events of others would overwrite; cancel those."""
        if event.state_key is None:
            return
        try:
            await self._store.cancel_for_state(
                event.room_id, event.type, event.state_key, event.sender, now_ms()
            )
        except Exception:
            # The event is committed already; its sender must not see an error.
            logger.exception("cancelling delayed state overwritten by %s failed", event.event_id)

    async def _send_due(self, *, stale_before: int) -> None:
        while True:
            now = now_ms()
            rows = await self._store.claim_due(now, stale_before, BATCH)
            for row in rows:
                await self._send_on_time(row)
            if len(rows) < BATCH:
                return

    async def _send_on_time(self, row: DelayedEvent) -> None:
        """A due event: sent, or finalised with the error that refused it,
        a rate limit's included (not retried, as the MSC says: the owner can
        look the error up)."""
        try:
            if self._write_limiter is not None:
                self._write_limiter.check(row.user_id)
            await self.send(row, reason="delay")
        except MatrixError as e:
            logger.info("delayed event %s refused: %s %s", row.delay_id, e.errcode, e.message)
            await self._store.mark_failed(row.delay_id, e.to_json(), now_ms())
        except Exception:
            # Not the room's answer (the database went away, say): the claim
            # stays and is taken up again once stale.
            logger.exception("sending delayed event %s failed; will retry", row.delay_id)

    async def _run_forever(self) -> None:
        # At start-up every claim is a previous process's unfinished send.
        stale_before = now_ms()
        while True:
            try:
                await self._send_due(stale_before=stale_before)
                stale_before = now_ms() - STALE_CLAIM_MS
                await self._purge()
                next_ts = await self._store.next_wake(STALE_CLAIM_MS)
            except Exception:
                logger.exception("sending delayed events failed; retrying")
                next_ts = now_ms() + int(RETRY_S * 1000)
            timeout = None if next_ts is None else max(0.0, (next_ts - now_ms()) / 1000)
            if timeout is None or timeout > PURGE_EVERY_MS / 1000:
                timeout = PURGE_EVERY_MS / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    async def _purge(self) -> None:
        now = now_ms()
        if now - self._last_purge < PURGE_EVERY_MS:
            return
        self._last_purge = now
        purged = await self._store.purge_finalised(now - RETENTION_MS, RETENTION_PER_USER)
        if purged:
            logger.info("forgot %d finalised delayed events", purged)
