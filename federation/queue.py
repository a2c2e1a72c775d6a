"""One destination's outbound queue: transactions of at most 50 PDUs and 100
EDUs, one in flight at a time, backoff on failure, then catch-up.

While a destination answers, new events are held in memory and sent in stream
order. When a transaction fails, the held events are dropped and the queue
switches to catch-up: nothing new is held, and once the backoff allows, the
destination is sent the newest owed event of each room it shares with us
(it fetches the rest with /get_missing_events), up to what it acknowledged.
Acknowledged positions are stored, so a restart catches up the same way.
Stored EDUs (to-device, device lists) are read from their outboxes and
deleted only once a transaction carrying them succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any
from urllib.parse import quote

from federation.backoff import Backoff
from federation.edus import Edu
from federation.transport import FederationClient, FederationError
from storage.federation_sender import FederationSenderStore, OutboxEdu, OutgoingEvent

logger = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
# A destination that answers but falls this far behind is caught up instead:
# memory per destination stays bounded.
MAX_HELD_PDUS = 5000
# After an unexpected error (the database, say), try again this much later.
ERROR_RETRY_S = 10.0

_txn_counter = itertools.count(1)
# Transaction ids must not repeat for a destination, across restarts too.
_TXN_PREFIX = str(int(time.time() * 1000))


def _now_ms() -> int:
    return int(time.time() * 1000)


class DestinationQueue:
    def __init__(
        self,
        destination: str,
        *,
        server_name: str,
        client: FederationClient,
        backoff: Backoff,
        store: FederationSenderStore,
        catching_up: bool = False,
    ) -> None:
        self.destination = destination
        self._server_name = server_name
        self._client = client
        self._backoff = backoff
        self._store = store
        self._catching_up = catching_up
        # Newest event position the destination acknowledged; loaded when needed.
        self._acknowledged: int | None = None
        self._held: list[OutgoingEvent] = []
        # Ephemeral EDUs, the latest per key: typing per (room, user), presence
        # per user, receipts per (room, type, user, thread).
        self._ephemeral: dict[tuple[str, ...], Edu] = {}
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._stopping = False
        # Set by every wake: news may have come while the loop was awaiting.
        self._woken = False

    @property
    def idle(self) -> bool:
        return self._task is None

    def add_pdu(self, event: OutgoingEvent) -> None:
        """Hold an event for the next transaction (unless catching up, when
        the owed-rooms table stands in for it)."""
        if self._catching_up:
            return
        if self._acknowledged is not None and event.stream_ordering <= self._acknowledged:
            return
        if len(self._held) >= MAX_HELD_PDUS:
            logger.warning("%s is %d events behind: catching up", self.destination, MAX_HELD_PDUS)
            self._start_catch_up()
            return
        self._held.append(event)
        self.wake()

    def add_edu(self, key: tuple[str, ...], edu: Edu) -> None:
        """An ephemeral EDU; a newer one with the same key replaces it."""
        self._ephemeral[key] = edu
        self.wake()

    def wake(self) -> None:
        """Start sending if nothing is in flight and the backoff allows."""
        self._woken = True
        if self._task is None and not self._stopping:
            self._task = asyncio.create_task(self._run())

    async def stop(self, timeout_s: float) -> None:
        """Let a transaction in flight finish (or abandon it after `timeout_s`:
        nothing is lost, acknowledged positions only move after success)."""
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_catch_up(self) -> None:
        self._catching_up = True
        self._held.clear()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                self._woken = False
                retry_at = await self._backoff.retry_at(self.destination)
                if retry_at is not None:
                    self._schedule_retry(retry_at)
                    return
                pdus = await self._next_pdus()
                stored = await self._store.outbox(self.destination, MAX_EDUS)
                ephemeral = list(self._ephemeral.items())[: MAX_EDUS - len(stored)]
                if not pdus and not stored and not ephemeral:
                    if self._catching_up:
                        # Caught up: from here on, new events are held again.
                        self._catching_up = False
                        continue
                    if self._woken:
                        continue
                    return
                for key, _ in ephemeral:
                    del self._ephemeral[key]
                if not await self._send(pdus, stored, [e for _, e in ephemeral]):
                    # Typing is stale by the time the destination is back; the
                    # latest presence and receipts are worth sending then.
                    for key, edu in ephemeral:
                        if key[0] != "typing":
                            self._ephemeral.setdefault(key, edu)
                    self._start_catch_up()
                    if await self._backoff.retry_at(self.destination) is None:
                        # The transport backs off only for 5xx and no answer;
                        # a refused transaction must not be retried at once.
                        await self._backoff.failed(self.destination)
                    continue
                if pdus:
                    newest = pdus[-1].stream_ordering
                    self._acknowledged = max(self._acknowledged or 0, newest)
                    if not self._catching_up:
                        del self._held[: len(pdus)]
                await self._store.acknowledge(
                    self.destination, pdus[-1].stream_ordering if pdus else None, stored
                )
        except Exception:
            logger.exception("federation queue of %s failed", self.destination)
            if not self._stopping:
                self._retry = asyncio.get_running_loop().call_later(ERROR_RETRY_S, self._retry_now)
        finally:
            self._task = None

    async def _next_pdus(self) -> list[OutgoingEvent]:
        if self._acknowledged is None:
            self._acknowledged = await self._store.last_successful(self.destination)
            self._held = [e for e in self._held if e.stream_ordering > self._acknowledged]
        if self._catching_up:
            return await self._store.catch_up(self.destination, self._acknowledged, MAX_PDUS)
        return self._held[:MAX_PDUS]

    async def _send(
        self, pdus: list[OutgoingEvent], stored: list[OutboxEdu], ephemeral: list[Edu]
    ) -> bool:
        txn_id = f"{_TXN_PREFIX}_{next(_txn_counter)}"
        body: dict[str, Any] = {
            "origin": self._server_name,
            "origin_server_ts": _now_ms(),
            "pdus": [e.pdu for e in pdus],
            "edus": [{"edu_type": e.edu_type, "content": e.content} for e in stored]
            + [e.json() for e in ephemeral],
        }
        try:
            answer = await self._client.put_json(
                self.destination, f"/_matrix/federation/v1/send/{quote(txn_id, safe='')}", body
            )
        except FederationError as e:
            logger.info("transaction %s to %s failed: %s", txn_id, self.destination, e)
            return False
        results = answer.get("pdus") if isinstance(answer, dict) else None
        for event_id, result in (results if isinstance(results, dict) else {}).items():
            if isinstance(result, dict) and result.get("error"):
                logger.info("%s refused %s: %s", self.destination, event_id, result["error"])
        return True

    def _schedule_retry(self, retry_at_ms: int) -> None:
        if self._retry is not None:
            self._retry.cancel()
        delay = max(0.0, (retry_at_ms - _now_ms()) / 1000)
        self._retry = asyncio.get_running_loop().call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self.wake()
