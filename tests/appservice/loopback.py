"""A real appservice on loopback for the delivery tests: an aiohttp server
answering PUT /_matrix/app/v1/transactions/{txnId} (and the ping),
recording what it was sent, that can answer errors or go away and come back on the same port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import attrs
from aiohttp import web


@attrs.frozen
class Received:
    txn_id: str
    body: dict[str, Any]
    authorization: str | None
    query: dict[str, str]
    # time.time() when the handler saw it.
    at: float


class LoopbackAppService:
    def __init__(self, hs_token: str) -> None:
        self.hs_token = hs_token
        # Every transaction acknowledged, duplicates (same id) once.
        self.transactions: list[Received] = []
        self.attempts = 0
        # While set, transactions are answered 503.
        self.failing = False
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", self._transaction)
        app.router.add_post("/_matrix/app/v1/ping", self._ping)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Go away: the port refuses connections until `start` again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _ping(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.hs_token}":
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "bad token"}, status=403)
        return web.json_response({})

    async def _transaction(self, request: web.Request) -> web.Response:
        self.attempts += 1
        self._changed.set()
        if request.headers.get("Authorization") != f"Bearer {self.hs_token}":
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "bad token"}, status=403)
        if self.failing:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "down"}, status=503)
        txn_id = request.match_info["txn_id"]
        if all(t.txn_id != txn_id for t in self.transactions):
            self.transactions.append(
                Received(
                    txn_id,
                    await request.json(),
                    request.headers.get("Authorization"),
                    dict(request.query),
                    time.time(),
                )
            )
        return web.json_response({})

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for t in self.transactions for e in t.body["events"]]

    def ephemeral(self) -> list[dict[str, Any]]:
        return [e for t in self.transactions for e in t.body.get("ephemeral", [])]

    async def wait_for(self, check: Callable[[], Any], within_s: float = 10.0) -> Any:
        """Until `check()` is truthy (checked after every request); returns it."""
        async with asyncio.timeout(within_s):
            while not (result := check()):
                self._changed.clear()
                await self._changed.wait()
        return result
