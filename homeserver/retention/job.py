"""The purge job: removes the content of events that outlived their room's
retention policy, and the original content of events redacted longer ago
than `redaction_retention_period_ms`.

A purged event is not deleted: its stored JSON becomes its redacted form
(as MSC2228's self-destructing events, homeserver/rooms/self_destruct.py),
so the room's DAG, state and auth chains stay whole and other servers can
still fetch it. State events are never purged (as in Synapse), nor events
under a legal hold (storage/legal_holds.py). Work goes in batches: one query
selects a batch, one loads it, one transaction purges it; then the local
media only purged events named are deleted through MediaManager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import attrs

from homeserver.events.redaction import redact
from homeserver.media.manage import MediaManager
from homeserver.retention.media_refs import local_media_of
from homeserver.retention.metrics import PurgeMetrics
from homeserver.retention.policy import RetentionPolicies
from storage.database import now_ms
from storage.events import EventStore
from storage.retention import RetentionStore

logger = logging.getLogger(__name__)

# How long the job waits after a failed run before it tries again.
RETRY_S = 60.0


@attrs.frozen
class PurgeSettings:
    server_name: str
    batch_size: int
    interval_ms: int
    log_every_batches: int
    # None: redacted events keep their original content forever.
    redaction_retention_ms: int | None
    # The rest after each batch, as a multiple of the batch's own time.
    pause_factor: float = 1.0


@attrs.frozen
class PurgeResult:
    expired: int = 0
    redacted: int = 0
    media: int = 0


class PurgeJob:
    def __init__(
        self,
        store: RetentionStore,
        events: EventStore,
        policies: RetentionPolicies | None,
        media: MediaManager,
        metrics: PurgeMetrics,
        settings: PurgeSettings,
    ) -> None:
        self._store = store
        self._events = events
        self._policies = policies
        self._media = media
        self._metrics = metrics
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        # One run at a time, whether from the loop or a caller.
        self._running = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, now: int) -> PurgeResult:
        """Purge everything that is due at `now` (ms); what was purged."""
        async with self._running:
            started = time.monotonic()
            expired = media = redacted = 0
            if self._policies is not None:
                policies = self._policies
                cutoffs, default_cutoff = policies.room_cutoffs(now)
                last: tuple[int, str] | None = None

                async def next_expired(n: int) -> list[str]:
                    nonlocal last
                    keys = await self._store.expired_batch(cutoffs, default_cutoff, n, last)
                    last = keys[-1] if keys else last
                    return [event_id for _, event_id in keys]

                expired, media = await self._batches("retention", next_expired, delete_media=True)
            period = self._settings.redaction_retention_ms
            if period is not None:
                last_id = ""

                async def next_redacted(n: int) -> list[str]:
                    nonlocal last_id
                    ids = await self._store.redacted_batch(now - period, n, last_id)
                    last_id = ids[-1] if ids else last_id
                    return ids

                # As Synapse: pruning a redacted event leaves its media alone.
                redacted, _ = await self._batches("redaction", next_redacted, delete_media=False)
            seconds = time.monotonic() - started
            self._metrics.run_ended(seconds, time.time())
            if expired or redacted:
                logger.info(
                    "purge job: %d expired and %d redacted events purged, %d media deleted, in %.1fs",
                    expired,
                    redacted,
                    media,
                    seconds,
                )
            return PurgeResult(expired, redacted, media)

    async def _batches(
        self, reason: str, select: Callable[[int], Awaitable[list[str]]], *, delete_media: bool
    ) -> tuple[int, int]:
        """Purge batches from `select(limit)` until one comes back short."""
        size = self._settings.batch_size
        events_done = media_done = batches = 0
        while True:
            started = time.monotonic()
            event_ids = await select(size)
            purged, media = await self._purge(event_ids, delete_media=delete_media)
            took = time.monotonic() - started
            events_done += purged
            media_done += media
            self._metrics.purged(reason, purged, media)
            batches += 1
            if batches % self._settings.log_every_batches == 0:
                logger.info(
                    "purge job (%s): %d batches, %d events purged so far",
                    reason,
                    batches,
                    events_done,
                )
            # A short batch is the last.
            if len(event_ids) < size:
                return events_done, media_done
            # Requests waiting on this process and its database go first.
            await asyncio.sleep(took * self._settings.pause_factor)

    async def _purge(self, event_ids: Sequence[str], *, delete_media: bool) -> tuple[int, int]:
        """Purge one batch in one transaction, then delete the media it freed."""
        if not event_ids:
            return 0, 0
        stored = await self._events.get_events(event_ids)
        pruned: dict[str, str] = {}
        media: set[str] = set()
        for event_id in event_ids:
            found = stored.get(event_id)
            if found is None:
                continue
            event = found.event
            pruned[event_id] = json.dumps(
                redact(event.pdu, event.room_version), ensure_ascii=False, separators=(",", ":")
            )
            if delete_media:
                media |= local_media_of(event.content, self._settings.server_name)
        purged = await self._store.purge(pruned)
        for event_id in purged:
            self._events.forget_cached(event_id)
        deleted = 0
        if media and purged:
            unused = media - await self._store.still_referenced(self._settings.server_name, media)
            for media_id in sorted(unused):
                deleted += await self._media.delete(media_id)
        return len(purged), deleted

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once(now_ms())
                delay = self._settings.interval_ms / 1000
            except Exception:
                logger.exception("the purge job failed; retrying")
                delay = RETRY_S
            await asyncio.sleep(delay)
