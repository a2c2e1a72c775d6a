"""Presence: online, unavailable or offline, with a status message.

A user's presence comes from their syncs (set_presence, online unless the
client says otherwise; "offline" leaves it alone) and from PUT /status. As
in Synapse, it then decays on timers: an online user inactive for 5 minutes
becomes unavailable, "currently active" lasts a minute after the last
activity, and a user with no sync in flight for 30 seconds goes offline.

The state of users this process has seen is kept in memory; changes that
others should see get a stream position and a database row, and wake the
users who share a room with them. Timers are one periodic sweep over the
users who are not offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

import attrs

from homeserver.ephemeral.common import StreamPublisher
from homeserver.errors import forbidden, invalid_param
from homeserver.identifiers import is_valid_user_id
from homeserver.requester import Requester
from homeserver.stream_moves import MEMBERS
from homeserver.sync.filter import event_allowed
from homeserver.sync.response import SyncRequest
from storage.presence import PresenceRow, PresenceStore

logger = logging.getLogger(__name__)

STREAM = "presence"
ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)


# Told of presence changes that others see, once stored.
PresenceListener = Callable[[list[PresenceRow]], None]


def now_ms() -> int:
    return int(time.time() * 1000)


@attrs.define
class _Tracked:
    """What this process knows of a user's presence, beyond the stored row."""

    row: PresenceRow
    last_sync_ts: int = 0
    syncs_in_flight: int = 0


@attrs.frozen
class PresenceTimers:
    idle_ms: int = 5 * 60 * 1000
    sync_timeout_ms: int = 30 * 1000
    active_ms: int = 60 * 1000
    sweep_interval_s: float = 5.0

    @classmethod
    def from_timeouts(cls, idle_ms: int, sync_timeout_ms: int) -> PresenceTimers:
        """The config's timeouts; the sweep runs often enough for the
        shortest of them (every 5 s at Synapse's 30 s sync timeout)."""
        return cls(
            idle_ms=idle_ms,
            sync_timeout_ms=sync_timeout_ms,
            sweep_interval_s=min(5.0, sync_timeout_ms / 6000),
        )


def presence_content(row: PresenceRow, now_ms: int) -> dict[str, Any]:
    """The m.presence content (and GET /status body) for a row, as Synapse shapes it."""
    content: dict[str, Any] = {"presence": row.state}
    if row.last_active_ts:
        content["last_active_ago"] = max(0, now_ms - row.last_active_ts)
    if row.status_msg:
        content["status_msg"] = row.status_msg
    if row.state == ONLINE:
        content["currently_active"] = row.currently_active
    return content


def _offline(user_id: str) -> PresenceRow:
    return PresenceRow(user_id, OFFLINE, None, 0, False)


def with_activity(row: PresenceRow, now: int, timers: PresenceTimers) -> PresenceRow:
    """`currently_active`: online and active within the last `active_ms`."""
    active = row.state == ONLINE and now - row.last_active_ts < timers.active_ms
    return attrs.evolve(row, currently_active=active)


def decayed(
    row: PresenceRow, now: int, last_sync_ts: int, syncing: bool, timers: PresenceTimers
) -> PresenceRow:
    """The row once every timer that ran out is applied: not currently
    active any more, idle (unavailable), or offline once no sync was in
    flight for the sync timeout. The one rule, whether one process decides
    it or a deployment's sweeper (homeserver/cluster/presence.py)."""
    new = row
    if row.state == ONLINE and now - row.last_active_ts >= timers.idle_ms:
        new = attrs.evolve(new, state=UNAVAILABLE)
    last_seen = max(last_sync_ts, row.last_active_ts)
    if not syncing and now - last_seen >= timers.sync_timeout_ms:
        new = attrs.evolve(new, state=OFFLINE)
    return with_activity(new, now, timers)


class PresenceService:
    def __init__(
        self,
        store: PresenceStore,
        publisher: StreamPublisher,
        *,
        timers: PresenceTimers = PresenceTimers(),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._timers = timers
        self._clock = clock
        # Users who are not offline, and those whose syncs are in flight.
        self._tracked: dict[str, _Tracked] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._listeners: list[PresenceListener] = []

    def add_listener(self, listener: PresenceListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Take over the users stored as present: they time out like the others."""
        await self._publisher.start()
        now = self._clock()
        for row in await self._store.not_offline():
            self._tracked[row.user_id] = _Tracked(row, last_sync_ts=now)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def set_status(
        self, requester: Requester, user_id: str, presence: str, status_msg: str | None
    ) -> None:
        """PUT /status: the state and the status message (cleared when absent)."""
        if requester.user_id != user_id:
            raise forbidden("Can only set your own presence state")
        if presence not in STATES:
            raise invalid_param("presence must be online, unavailable or offline")
        now = self._clock()
        tracked = await self._tracked_row(user_id)
        row = tracked.row
        await self._apply(
            tracked,
            attrs.evolve(
                row,
                state=presence,
                status_msg=status_msg,
                last_active_ts=now if presence == ONLINE else row.last_active_ts,
            ),
        )

    async def set_remote(self, rows: list[PresenceRow]) -> None:
        """Presence of other servers' users (the caller checked whose they
        are): stored and announced as given. Their server runs their timers."""
        valid = [r for r in rows if r.state in STATES and is_valid_user_id(r.user_id)]
        if valid:
            await self._persist(valid)

    async def get_status(self, requester: Requester, user_id: str) -> dict[str, Any]:
        """GET /status: for the user themself and those who share a room with them."""
        if not is_valid_user_id(user_id):
            raise invalid_param("Invalid user id")
        if requester.user_id != user_id and not await self._store.shares_room(
            requester.user_id, user_id
        ):
            raise forbidden("You are not allowed to see their presence")
        row = self._known_row(user_id)
        if row is None:
            row = (await self._store.get([user_id])).get(user_id) or _offline(user_id)
        return presence_content(row, self._clock())

    def _known_row(self, user_id: str) -> PresenceRow | None:
        """The user's row as this process knows it, if it does."""
        tracked = self._tracked.get(user_id)
        return None if tracked is None else tracked.row

    @contextlib.asynccontextmanager
    async def syncing(self, user_id: str, set_presence: str) -> AsyncIterator[None]:
        """Around a /sync request: its set_presence applies, and the user does
        not time out while it is in flight. "offline" syncs change nothing."""
        if set_presence == OFFLINE:
            yield
            return
        tracked = await self._tracked_row(user_id)
        now = self._clock()
        tracked.syncs_in_flight += 1
        tracked.last_sync_ts = now
        try:
            row = tracked.row
            active = set_presence == ONLINE
            await self._apply(
                tracked,
                attrs.evolve(
                    row,
                    state=set_presence,
                    last_active_ts=now if active else row.last_active_ts,
                ),
            )
            yield
        finally:
            tracked.syncs_in_flight -= 1
            tracked.last_sync_ts = self._clock()

    def is_syncing(self, user_id: str) -> bool:
        """Whether a /sync of the user's is in flight (not counting
        set_presence=offline ones, which background clients use): a client is
        open, so pushes can wait (push config suppress_when_active)."""
        tracked = self._tracked.get(user_id)
        return tracked is not None and tracked.syncs_in_flight > 0

    async def syncing_users(self, user_ids: Collection[str]) -> set[str]:
        """Those of `user_ids` with a /sync in flight (`is_syncing`), for the
        pushers (push config suppress_when_active): one process's view here."""
        return {u for u in user_ids if self.is_syncing(u)}

    async def bump_active(self, user_id: str) -> None:
        """The user did something (typed, sent a receipt): they are active,
        and back online if they had gone idle."""
        tracked = await self._tracked_row(user_id)
        row = tracked.row
        state = ONLINE if row.state == UNAVAILABLE else row.state
        await self._apply(tracked, attrs.evolve(row, state=state, last_active_ts=self._clock()))

    async def _tracked_row(self, user_id: str) -> _Tracked:
        tracked = self._tracked.get(user_id)
        if tracked is None:
            row = (await self._store.get([user_id])).get(user_id) or _offline(user_id)
            # Another request may have loaded it meanwhile: keep theirs.
            tracked = self._tracked.setdefault(user_id, _Tracked(row))
        return tracked

    async def _apply(self, tracked: _Tracked, new: PresenceRow) -> None:
        """Make `new` the user's presence; store and announce it if others
        would see a difference (state, status message, currently active)."""
        new = with_activity(new, self._clock(), self._timers)
        old, tracked.row = tracked.row, new
        if (old.state, old.status_msg, old.currently_active) != (
            new.state,
            new.status_msg,
            new.currently_active,
        ):
            await self._persist([new])

    async def _persist(
        self, rows: list[PresenceRow], read_at: list[int] | None = None
    ) -> list[PresenceRow]:
        """Store and announce the rows; with `read_at` (the stream position
        of each stored row the change was decided on), only those whose
        stored row did not change meanwhile. Returns the rows written."""
        positions = [await self._publisher.allocate() for _ in rows]
        written: list[PresenceRow] = []
        rooms: dict[str, list[str]] = {}
        try:
            if read_at is None:
                await self._store.put(list(zip(rows, positions, strict=True)))
                written = rows
            else:
                users = await self._store.put_unless_changed(
                    list(zip(rows, positions, read_at, strict=True))
                )
                written = [r for r in rows if r.user_id in users]
            # Everyone who shares a room with them, woken through those rooms.
            rooms = await self._store.joined_rooms([r.user_id for r in written])
        finally:
            for row, position in zip(rows, positions, strict=True):
                self._publisher.publish(
                    position,
                    row in written,
                    users=[row.user_id],
                    rooms=rooms.get(row.user_id, ()),
                )
        if written:
            for listener in self._listeners:
                listener(written)
        return written

    async def check_timeouts(self) -> None:
        """Apply every timer that has run out: not currently active any more,
        idle, or offline once syncs have stopped."""
        now = self._clock()
        timers = self._timers
        changed = []
        for user_id, tracked in list(self._tracked.items()):
            row = tracked.row
            if row.state == OFFLINE:
                if tracked.syncs_in_flight == 0:
                    del self._tracked[user_id]
                continue
            syncing = tracked.syncs_in_flight > 0
            new = decayed(row, now, tracked.last_sync_ts, syncing, timers)
            if new != row:
                tracked.row = new
                changed.append(new)
                if new.state == OFFLINE:
                    del self._tracked[user_id]
        if changed:
            await self._persist(changed)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._timers.sweep_interval_s)
            try:
                await self.check_timeouts()
            except Exception:
                logger.exception("presence timeouts failed")

    async def _newly_shared(
        self, request: SyncRequest, changed: list[PresenceRow]
    ) -> list[PresenceRow]:
        """As in Synapse, an incremental sync also carries the presence of users
        who came to share a room with the user in its range (whether it changed
        or not), so that a client learns it for new room members."""
        assert request.since is not None
        since, now = request.since["events"], request.now["events"]
        if since >= now:
            return []
        seen = {row.user_id for row in changed}
        found = await self._store.newly_shared(request.user_id, since, now, request.now[STREAM])
        return [row for row in found if row.user_id not in seen]

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        """response["presence"]: what changed in (since, now] for the user and
        those who share a room with them, and of those who came to share one;
        on an initial sync, who is not offline. For a peek (a room initialSync,
        the /events peek), the members of the peeked rooms, and on an initial
        sync all of them."""
        presence_filter = request.filter.get("presence", {})
        if not event_allowed(presence_filter, "m.presence"):
            return
        now = request.now[STREAM]
        peek = request.peek_rooms
        if request.since is None or request.full_state:
            if peek is not None:
                rows = await self._store.current_in_rooms(peek, now)
            elif not now:
                rows = []
            else:
                rows = await self._store.current_for(request.user_id, now)
        else:
            since = request.since[STREAM]
            if peek is not None:
                if since >= now:
                    return
                rows = await self._store.changed_in_rooms(peek, since, now)
            else:
                rows = (
                    await self._store.changed_for(request.user_id, since, now)
                    if since < now and not request.quiet(STREAM)
                    else []
                )
                if not request.quiet(MEMBERS):
                    rows += await self._newly_shared(request, rows)
        now_ms = self._clock()
        events = [
            {"type": "m.presence", "sender": row.user_id, "content": presence_content(row, now_ms)}
            for row in rows
            if event_allowed(presence_filter, "m.presence", sender=row.user_id)
        ]
        if events:
            response["presence"] = {"events": events}
