"""The sync engine: tokens, long polling, and the order of the providers.

Each provider adds its part of the response (the rooms, ephemeral events,
account data, to-device messages, ...) for the range between the request's
`since` and `now` tokens. Providers run in order: the rooms provider first, so
that the others can add to the room entries it made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Protocol

from homeserver.notifier import Notifier
from homeserver.requester import Requester
from homeserver.stream_moves import MEMBERS
from homeserver.sync.response import RoomsOfUser, SyncRequest, has_news
from homeserver.sync.token import STREAMS, SyncToken

MAX_TIMEOUT_MS = 5 * 60 * 1000
# Responses built at once. Thousands of long polls arriving together (or
# woken together by one message in a big room) would otherwise all be half
# built at the same time, each holding its partial response and its place
# in the database pool's queue: the process's memory then grows to that
# peak and keeps it. Beyond this many, a request waits its turn holding
# only its parameters; the database pool serves no more at once anyway.
MAX_CONCURRENT_BUILDS = 32


class SyncProvider(Protocol):
    """Adds its part of a response.

    A provider whose part of an incremental sync is only ever what changed in
    some streams names them in a `sync_streams` class attribute: when none of
    them moved between `since` and `now` (an idle long poll, or a wake-up by
    another stream), the service does not call it at all. Providers without
    the attribute always run.
    """

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None: ...


def _streams_of(provider: SyncProvider) -> Collection[str] | None:
    streams: Collection[str] | None = getattr(provider, "sync_streams", None)
    return streams


class SyncActivity(Protocol):
    """Told about every /sync request while it runs (presence: set_presence,
    and a user with a sync in flight is not timed out)."""

    def syncing(self, user_id: str, set_presence: str) -> AbstractAsyncContextManager[None]: ...


class SyncService:
    def __init__(
        self,
        notifier: Notifier,
        providers: Sequence[SyncProvider],
        rooms: RoomsOfUser,
        activity: SyncActivity | None = None,
    ) -> None:
        self._notifier = notifier
        self._providers = providers
        self._rooms = rooms
        self._activity = activity
        self._building = asyncio.Semaphore(MAX_CONCURRENT_BUILDS)

    def current_token(self) -> SyncToken:
        return SyncToken({s: self._notifier.positions.get(s, 0) for s in STREAMS})

    def _now(self, since: SyncToken | None) -> SyncToken:
        """Where the response ends. In a cluster a token from another process
        can be a little ahead of this one's view: every position up to it is
        committed (it was the least over every writer there), so the response
        ends there, never before the token (which would repeat what the
        client already has)."""
        now = self.current_token()
        if since is None or not self._notifier.shared:
            return now
        return SyncToken({s: max(now[s], since[s]) for s in STREAMS})

    async def sync(
        self,
        requester: Requester,
        *,
        since: SyncToken | None,
        timeout_ms: int,
        full_state: bool,
        filter: dict[str, Any],
        set_presence: str,
        state_after: str | None = None,
    ) -> dict[str, Any]:
        """The response for `since`, waiting up to `timeout_ms` for news when there is none."""
        activity = (
            self._activity.syncing(requester.user_id, set_presence)
            if self._activity is not None
            else nullcontext()
        )
        async with activity:
            return await self._respond(
                requester, since, timeout_ms, full_state, filter, set_presence, state_after
            )

    async def snapshot(self, requester: Requester, filter: dict[str, Any]) -> dict[str, Any]:
        """An initial sync's response, without the presence effects of a /sync
        request: what the legacy /initialSync reshapes."""
        request = SyncRequest(requester, None, self.current_token(), filter, False, "offline")
        return await self._build(request)

    async def _respond(
        self,
        requester: Requester,
        since: SyncToken | None,
        timeout_ms: int,
        full_state: bool,
        filter: dict[str, Any],
        set_presence: str,
        state_after: str | None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        # The user's joined rooms, once known (read before the first wait).
        rooms: list[str] | None = None
        while True:
            now = self._now(since)
            request = SyncRequest(
                requester,
                since,
                now,
                filter,
                full_state,
                set_presence,
                state_after=state_after,
                moved=self._moved(requester.user_id, rooms, since, now, full_state),
            )
            response = await self._build(request)
            remaining = deadline - time.monotonic()
            if since is None or full_state or has_news(response) or remaining <= 0:
                return response
            rooms = await self._rooms.rooms_for_user(requester.user_id)
            await self._notifier.wait(requester.user_id, rooms, now.positions, remaining)
            if time.monotonic() >= deadline and not self._notifier.moved_since(now.positions):
                return response
            # Something moved: let the writes that caused it settle into the
            # caches before building again.
            await asyncio.sleep(0)

    def _moved(
        self,
        user_id: str,
        rooms: Collection[str] | None,
        since: SyncToken | None,
        now: SyncToken,
        full_state: bool,
    ) -> frozenset[str] | None:
        """The streams that may hold news for the user between the tokens:
        those that moved at all, less, once the user's rooms are known, those
        the notifier's record shows moved only for others."""
        if since is None or full_state:
            return None
        # Any whose position differs (a token from before a restart of an
        # in-memory stream can be ahead of `now`: the record then says moved).
        moved = {s for s in STREAMS if since[s] != now[s]}
        if "events" in moved:
            moved.add(MEMBERS)
        if rooms is None:
            return frozenset(moved)
        recent = self._notifier.recent
        for stream in list(moved - {MEMBERS}):
            if not recent.moved_for(stream, user_id, rooms, since[stream], now[stream]):
                moved.discard(stream)
        if MEMBERS in moved and not recent.members_moved_for(
            user_id, rooms, since["events"], now["events"]
        ):
            moved.discard(MEMBERS)
        return frozenset(moved)

    async def _build(self, request: SyncRequest) -> dict[str, Any]:
        async with self._building:
            return await self._build_now(request)

    async def _build_now(self, request: SyncRequest) -> dict[str, Any]:
        response: dict[str, Any] = {"next_batch": str(request.now)}
        moved = request.moved
        for provider in self._providers:
            streams = _streams_of(provider)
            if moved is not None and streams is not None and moved.isdisjoint(streams):
                continue
            await provider.add(request, response)
        return response
