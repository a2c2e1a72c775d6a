"""One application service's queue: one transaction in flight, retried with
the same id and body until the appservice answers 2xx.

The transaction is stored before its first attempt, and acknowledging it
deletes it and moves the appservice's positions in one database transaction,
so a restart of this server resends it (same id: the appservice drops a
duplicate) and then goes on from where it stopped. A failure waits with
exponential backoff (capped at a few minutes); `wake` cuts the wait short,
as after a successful ping.

The request carries the hs_token in the Authorization header only: Synapse
sends the legacy `access_token` query parameter only when an option asks for
it (`use_appservice_legacy_authorization`, off by default), and so do we not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

import aiohttp

from homeserver.appservice.delivery.builder import (
    STREAMS,
    BuiltTransaction,
    EphemeralBuffer,
    TransactionBuilder,
)
from homeserver.appservice.delivery.metrics import DeliveryMetrics
from storage.appservice_delivery import AppServiceDeliveryStore, PendingTransaction

if TYPE_CHECKING:
    from homeserver.appservice.registration import AppService

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 300.0
TIMEOUT: Final = aiohttp.ClientTimeout(total=60, connect=10)
# After an unexpected error reading the streams, try again this much later.
ERROR_RETRY_S: Final = 5.0


def backoff_s(failures: int) -> float:
    """The wait after `failures` failed attempts in a row: 1, 2, 4, ... s, at most 5 min."""
    return min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2 ** max(0, failures - 1))


class AppServiceQueue:
    def __init__(
        self,
        appservice: AppService,
        *,
        store: AppServiceDeliveryStore,
        builder: TransactionBuilder,
        session: aiohttp.ClientSession,
        metrics: DeliveryMetrics,
        current: Callable[[], Mapping[str, int]],
        announced_at: Callable[[int], float | None],
    ) -> None:
        self.appservice = appservice
        self._store = store
        self._builder = builder
        self._session = session
        self._metrics = metrics
        self._current = current
        self._announced_at = announced_at
        self.ephemeral = EphemeralBuffer()
        self.positions: dict[str, int] = {}
        self.failures = 0
        # Whether a stored transaction may be waiting (at start and after an
        # error); otherwise none is, as this queue stores and acknowledges them.
        self._check_stored = True
        # Set when a stream moved or ephemeral news arrived; `_retry` cuts a backoff short.
        self._news = asyncio.Event()
        self._retry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.positions = await self._store.start_positions(
            self.appservice.id, {s: self._current().get(s, 0) for s in STREAMS}
        )
        self._news.set()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Abandon the attempt in flight: it is stored and resent on start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def news(self) -> None:
        self._news.set()

    def wake(self) -> None:
        """Retry at once (the appservice answered a ping), and look for news."""
        self._retry.set()
        self._news.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("appservice %s: delivery failed", self.appservice.id)
                self._check_stored = True
                await self._sleep(ERROR_RETRY_S)

    async def _step(self) -> None:
        pending = None
        if self._check_stored:
            pending = await self._store.pending(self.appservice.id)
            self._check_stored = False
        orderings: tuple[int, ...] = ()
        if pending is None:
            await self._news.wait()
            self._news.clear()
            built = await self._builder.build(
                self.appservice, self.positions, self._current(), self.ephemeral
            )
            pending = await self._store_built(built)
            if pending is None:
                return
            orderings = built.event_orderings
        await self._send_until_acknowledged(pending)
        await self._store.acknowledge(
            self.appservice.id, pending.txn_id, pending.positions, int(time.time() * 1000)
        )
        self._advance(pending.positions)
        self._metrics.sent(self.appservice.id, pending.event_count, self._latencies(orderings))
        # There may be more to send already.
        self._news.set()

    async def _store_built(self, built: BuiltTransaction) -> PendingTransaction | None:
        """Store a transaction worth sending; when nothing was for the
        appservice, just move its positions (no write if they did not move)."""
        if built.body is None:
            if built.positions != self.positions:
                await self._store.acknowledge(self.appservice.id, None, built.positions, 0)
                self._advance(built.positions)
                self._news.set()
            return None
        return await self._store.create_transaction(
            self.appservice.id, built.body, built.positions, len(built.body["events"])
        )

    def _advance(self, positions: Mapping[str, int]) -> None:
        for stream, position in positions.items():
            self.positions[stream] = max(self.positions.get(stream, 0), position)

    def _latencies(self, orderings: tuple[int, ...]) -> list[float]:
        now = time.monotonic()
        found = (self._announced_at(o) for o in orderings)
        return [now - t for t in found if t is not None]

    async def _send_until_acknowledged(self, pending: PendingTransaction) -> None:
        while not await self._attempt(pending):
            self.failures += 1
            self._metrics.failed(self.appservice.id)
            self._retry.clear()
            await self._sleep(backoff_s(self.failures))
        self.failures = 0

    async def _attempt(self, pending: PendingTransaction) -> bool:
        url = self.appservice.url
        assert url is not None
        txn = urllib.parse.quote(str(pending.txn_id), safe="")
        try:
            async with self._session.put(
                f"{url.rstrip('/')}/_matrix/app/v1/transactions/{txn}",
                json=pending.body,
                headers={"Authorization": f"Bearer {self.appservice.hs_token}"},
                timeout=TIMEOUT,
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return True
                logger.warning(
                    "appservice %s answered %d to transaction %d",
                    self.appservice.id,
                    response.status,
                    pending.txn_id,
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            logger.warning(
                "appservice %s: transaction %d failed: %r", self.appservice.id, pending.txn_id, e
            )
        return False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._retry.wait()
        self._retry.clear()
