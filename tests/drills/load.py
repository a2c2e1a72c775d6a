"""A send load that keeps books: which sends the server acknowledged, with which
event id, and which were in flight when something broke.

Each worker sends messages with its own transaction ids, as a client does; a
send that fails (connection cut, 5xx) is retried with the same transaction id
until it succeeds, as the spec tells clients to, so that the books can be
checked against the room's history afterwards.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import attrs

from tests.interop.matrix_client import MatrixClient, quote

# A request that takes longer than this is a hung request: the drill fails.
REQUEST_DEADLINE = 20.0


@attrs.define
class Books:
    """What the load sent: txn id -> body, and txn id -> acknowledged event id."""

    bodies: dict[str, str] = attrs.field(factory=dict)
    acknowledged: dict[str, str] = attrs.field(factory=dict)
    failures: list[str] = attrs.field(factory=list)
    slowest: float = 0.0

    @property
    def unacknowledged(self) -> list[str]:
        return [txn for txn in self.bodies if txn not in self.acknowledged]


class SendLoad:
    """`workers` concurrent senders into one room until `stop()`."""

    def __init__(self, client: MatrixClient, room_id: str, workers: int, tag: str) -> None:
        self.client = client
        self.room_id = room_id
        self.workers = workers
        self.tag = tag
        self.books = Books()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    def acknowledged_count(self) -> int:
        return len(self.books.acknowledged)

    async def _worker(self, worker: int) -> None:
        n = 0
        while not self._stopping.is_set():
            txn = f"{self.tag}-w{worker}-{n}"
            n += 1
            self.books.bodies[txn] = txn
            while not self._stopping.is_set():
                event_id = await self.send(txn)
                if event_id is not None:
                    self.books.acknowledged[txn] = event_id
                    break
                await asyncio.sleep(0.2)  # the server is away: retry the same txn

    async def send(self, txn: str) -> str | None:
        """One send of `txn`; its event id if the server acknowledged it."""
        path = f"/_matrix/client/v3/rooms/{quote(self.room_id)}/send/m.room.message/{quote(txn)}"
        started = time.monotonic()
        try:
            async with asyncio.timeout(REQUEST_DEADLINE):
                status, body = await self.client.request(
                    "PUT", path, {"msgtype": "m.text", "body": txn}
                )
        except TimeoutError:
            self.books.failures.append(f"{txn}: no answer within {REQUEST_DEADLINE} s")
            return None
        except (aiohttp.ClientError, ValueError):
            return None  # the connection went away with the server: not acknowledged
        finally:
            self.books.slowest = max(self.books.slowest, time.monotonic() - started)
        if status == 200:
            return body["event_id"]
        return None

    async def settle(self) -> None:
        """Retry every unacknowledged send with its transaction id until it is acknowledged."""
        for txn in self.books.unacknowledged:
            for _ in range(50):
                event_id = await self.send(txn)
                if event_id is not None:
                    self.books.acknowledged[txn] = event_id
                    break
                await asyncio.sleep(0.2)
            else:
                self.books.failures.append(f"{txn}: never acknowledged on retry")


async def room_messages(client: MatrixClient, room_id: str) -> list[dict[str, Any]]:
    """Every m.room.message of the room, oldest first, read through /messages."""
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages"
    params = {"dir": "b", "limit": "500"}
    events: list[dict[str, Any]] = []
    while True:
        page = await client.ok("GET", path, params=params)
        events.extend(e for e in page["chunk"] if e["type"] == "m.room.message")
        if not page["chunk"] or "end" not in page:
            break
        params["from"] = page["end"]
    events.reverse()
    return events


async def check_books(load: SendLoad, client: MatrixClient) -> int:
    """Every acknowledged send once in the room's history with its acknowledged
    event id; retried transaction ids answer the same event id. Returns the count."""
    books = load.books
    assert not books.failures, books.failures[:10]
    # A retry of an acknowledged transaction is answered with the same event.
    sample = list(books.acknowledged.items())[:: max(1, len(books.acknowledged) // 200)]
    for txn, event_id in sample:
        assert await load.send(txn) == event_id, f"retried {txn} got another event"
    messages = await room_messages(client, load.room_id)
    seen: dict[str, list[str]] = {}
    for event in messages:
        body = event["content"].get("body", "")
        if body.startswith(load.tag + "-"):
            seen.setdefault(body, []).append(event["event_id"])
    duplicated = {body: ids for body, ids in seen.items() if len(ids) > 1}
    assert not duplicated, f"sent twice: {list(duplicated.items())[:5]}"
    missing = [txn for txn in books.acknowledged if txn not in seen]
    assert not missing, f"{len(missing)} acknowledged sends lost, e.g. {missing[:5]}"
    wrong = [txn for txn, eid in books.acknowledged.items() if seen[txn] != [eid]]
    assert not wrong, f"acknowledged event ids differ from history: {wrong[:5]}"
    unasked = set(seen) - set(books.bodies)
    assert not unasked, f"messages nobody sent: {sorted(unasked)[:5]}"
    return len(books.acknowledged)
