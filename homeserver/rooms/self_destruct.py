"""Self-destructing events (MSC2228, Synapse's `enable_ephemeral_messages`).

A message event whose content has `org.matrix.self_destruct_after` (a
timestamp in ms) is redacted by this server when that time comes: its stored
JSON is replaced by its redacted form, as Synapse does, without a redaction
event. Expiries are stored, so they survive a restart; one background task
sleeps until the earliest and is woken when an event is scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from homeserver.events.event import Event
from homeserver.events.redaction import redact
from storage.database import now_ms
from storage.event_expiry import EventExpiryStore
from storage.events import EventStore

logger = logging.getLogger(__name__)

SELF_DESTRUCT_AFTER = "org.matrix.self_destruct_after"
# Expired events censored per query, so a backlog never holds much at once.
BATCH = 100
# How long the task waits after a failure before it tries again.
RETRY_S = 60.0


class SelfDestructingEvents:
    def __init__(self, store: EventExpiryStore, events: EventStore) -> None:
        self._store = store
        self._events = events
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: schedule the expiry of a self-destructing message."""
        expiry = event.content.get(SELF_DESTRUCT_AFTER)
        if event.state_key is not None or type(expiry) is not int:
            return
        try:
            await self._store.schedule(event.event_id, expiry)
        except Exception:
            # The event is committed already; its sender must not see an error.
            logger.exception("scheduling the expiry of %s failed", event.event_id)
            return
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def expire_due(self, now: int) -> int:
        """Censor every event whose expiry has come; return how many."""
        done = 0
        while True:
            event_ids = await self._store.due(now, BATCH)
            stored = await self._events.get_events(event_ids)
            for event_id in event_ids:
                event = stored[event_id].event
                await self._store.censor(event_id, redact(event.pdu, event.room_version))
                self._events.forget_cached(event_id)
                done += 1
            if len(event_ids) < BATCH:
                return done

    async def _run_forever(self) -> None:
        while True:
            try:
                expired = await self.expire_due(now_ms())
                if expired:
                    logger.info("censored %d expired self-destructing events", expired)
                next_ts = await self._store.next_expiry()
            except Exception:
                logger.exception("expiring self-destructing events failed; retrying")
                next_ts = now_ms() + int(RETRY_S * 1000)
            timeout = None if next_ts is None else max(0.0, (next_ts - now_ms()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
