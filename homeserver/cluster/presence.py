"""Presence in a deployment of several processes, behaving as one server's.

A single process keeps who syncs and their last activity in memory and times
users out by itself (homeserver/ephemeral/presence.py). In a deployment a
user's polls may land on any `client` worker, one after the other or
alternating, so the timers cannot be any one process's:

- Each process reports, every `beat_s` (5 s, or a sixth of the sync timeout
  when that is shorter), in one statement, the users it holds a /sync for
  (last sync: now), those whose last sync here ended since its last report
  (last sync: when it ended) and the latest activity it saw of them
  (`presence_syncs`, one row per user and process). A /sync costs no write of
  its own: a user's times are written at most once per beat per process (as
  Synapse's workers report their syncing users every 10 s). Only a user this
  process has not reported yet is reported at once when their sync starts,
  so the sweeper never sees them syncing nowhere.
- One process decides: the holder of the `presence-timeouts` lease (role
  `background`) sweeps every sweep interval. It reads, in one query, this
  server's users who are not offline with the latest sync and activity any
  process reported, applies the single process's rule (`decayed`), and
  writes the changes as presence rows (each only if nobody wrote that row
  since it was read), so every process's /sync and the federation follower
  see them. A process that dies stops reporting, and its users go offline a
  sync timeout after its last report. Nobody goes offline before a sync
  timeout has passed since the lease was taken (as after a single process's
  start): a new holder has not heard from processes that started with it.

Each process still caches the rows it wrote or read, to apply a sync's
`set_presence` without a query; a row written by another process is dropped
from that cache through the invalidation channel (cluster/invalidation.py),
so the next sync of a user the sweeper set idle or offline writes them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection

import attrs

from homeserver.ephemeral.common import StreamPublisher
from homeserver.ephemeral.presence import (
    OFFLINE,
    PresenceService,
    PresenceTimers,
    _Tracked,
    decayed,
)
from storage.presence import PresenceRow, PresenceStore
from storage.presence_syncs import PresenceSyncStore
from storage.shared_caches import SharedCaches

logger = logging.getLogger(__name__)

# The shared cache of presence rows (docs/scaling.md, "Caches kept true").
CACHE = "presence"


class SharedPresenceService(PresenceService):
    """Presence of one process of a deployment: reports its syncs and
    activity, applies what its requests change, times nobody out itself."""

    def __init__(
        self,
        store: PresenceStore,
        publisher: StreamPublisher,
        syncs: PresenceSyncStore,
        shared: SharedCaches,
        *,
        instance: str,
        server_name: str,
        timers: PresenceTimers,
        clock: Callable[[], int],
    ) -> None:
        super().__init__(store, publisher, timers=timers, clock=clock)
        self._syncs = syncs
        self._shared = shared
        self._instance = instance
        self._server_name = server_name
        self.beat_s = timers.sweep_interval_s
        # (last sync, last activity) of each user as last reported.
        self._reported: dict[str, tuple[int, int]] = {}
        # Users whose cached row another process may have overwritten.
        self._stale: set[str] = set()
        self._beater: asyncio.Task[None] | None = None
        shared.register(CACHE, self._forget, self._forget_all)

    async def start(self) -> None:
        """No users taken over: the sweeper (`sweep`) times everyone out."""
        await self._publisher.start()
        self._beater = asyncio.create_task(self._beat_forever())

    async def stop(self) -> None:
        """Stop reporting, after a last report (the syncs that just ended)."""
        if self._beater is not None:
            self._beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beater
            self._beater = None
            with contextlib.suppress(Exception):
                await self.beat()

    @contextlib.asynccontextmanager
    async def syncing(self, user_id: str, set_presence: str) -> AsyncIterator[None]:
        if set_presence != OFFLINE and user_id not in self._reported:
            now = self._clock()
            active = 0 if (known := self._known_row(user_id)) is None else known.last_active_ts
            await self._syncs.beat(self._instance, [(user_id, now, active)])
            self._reported[user_id] = (now, active)
        async with super().syncing(user_id, set_presence):
            yield

    async def syncing_users(self, user_ids: Collection[str]) -> set[str]:
        """Those of `user_ids` with a /sync in flight here, or reported
        syncing by any process within the last two beats (a sync held is
        reported every beat; one that ended shows until two have passed):
        what the pushers ask, in one query, when suppress_when_active is on."""
        here = await super().syncing_users(user_ids)
        elsewhere = [u for u in user_ids if u not in here]
        if not elsewhere:
            return here
        since = self._clock() - int(2 * self.beat_s * 1000)
        return here | await self._syncs.synced_since(elsewhere, since)

    # --- the cache of rows, kept true across processes ---------------------

    def _forget(self, user_id: str) -> None:
        if user_id in self._tracked:
            self._stale.add(user_id)

    def _forget_all(self) -> None:
        self._stale.update(self._tracked)

    def _known_row(self, user_id: str) -> PresenceRow | None:
        return None if user_id in self._stale else super()._known_row(user_id)

    async def _tracked_row(self, user_id: str) -> _Tracked:
        """The tracked state, its row read again if another process wrote
        it; the latest activity this process saw is kept."""
        tracked = await super()._tracked_row(user_id)
        if user_id in self._stale:
            self._stale.discard(user_id)
            stored = (await self._store.get([user_id])).get(user_id)
            if stored is None:
                stored = PresenceRow(user_id, OFFLINE, None, 0, False)
            last_active = max(stored.last_active_ts, tracked.row.last_active_ts)
            tracked.row = attrs.evolve(stored, last_active_ts=last_active)
        return tracked

    async def _persist(
        self, rows: list[PresenceRow], read_at: list[int] | None = None
    ) -> list[PresenceRow]:
        written = await super()._persist(rows, read_at)
        for row in written:
            self._shared.tell_others(CACHE, row.user_id)
        return written

    # --- reporting -----------------------------------------------------------

    async def beat(self) -> None:
        """Report what changed since the last report, in one statement, then
        forget the users who neither sync here nor changed since: they are
        read again when they come back."""
        now = self._clock()
        entries = []
        for user_id, tracked in self._tracked.items():
            synced = now if tracked.syncs_in_flight else tracked.last_sync_ts
            report = (synced, tracked.row.last_active_ts)
            if self._reported.get(user_id) != report:
                entries.append((user_id, *report))
        if entries:
            await self._syncs.beat(self._instance, entries)
            for user_id, synced, active in entries:
                self._reported[user_id] = (synced, active)
        for user_id, tracked in list(self._tracked.items()):
            report = (tracked.last_sync_ts, tracked.row.last_active_ts)
            if not tracked.syncs_in_flight and self._reported.get(user_id) == report:
                del self._tracked[user_id]
                del self._reported[user_id]
                self._stale.discard(user_id)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.beat_s)
            try:
                await self.beat()
            except Exception:
                logger.exception("presence report failed")

    # --- the sweep, in the lease holder only ---------------------------------

    async def sweep(self, grace_from: int) -> None:
        """Apply every timer that ran out, as reported by every process (one
        read), and store the changes (one write, plus the rooms to wake).
        Nobody goes offline for lack of syncs before a sync timeout after
        `grace_from`. Old reports, applied already, are deleted."""
        now = self._clock()
        changes: list[PresenceRow] = []
        read_at: list[int] = []
        for user in await self._syncs.not_offline(self._server_name):
            stored = user.row
            row = attrs.evolve(
                stored, last_active_ts=max(stored.last_active_ts, user.last_active_ts)
            )
            new = decayed(row, now, max(user.last_sync_ts, grace_from), False, self._timers)
            if (new.state, new.status_msg, new.currently_active) != (
                stored.state,
                stored.status_msg,
                stored.currently_active,
            ):
                changes.append(new)
                read_at.append(user.stream_id)
        if changes:
            for row in await self._persist(changes, read_at):
                self._forget(row.user_id)
        await self._syncs.forget_before(now - 2 * self._timers.sync_timeout_ms)


class PresenceTimeouts:
    """The `presence-timeouts` duty: sweeps while this process holds its lease."""

    def __init__(self, presence: SharedPresenceService, clock: Callable[[], int]) -> None:
        self._presence = presence
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(self._clock()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sweep_forever(self, taken_at: int) -> None:
        while True:
            await asyncio.sleep(self._presence.beat_s)
            try:
                await self._presence.sweep(taken_at)
            except Exception:
                logger.exception("presence timeouts failed")
