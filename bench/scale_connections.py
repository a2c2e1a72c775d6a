"""Phase "connections" of `scale.py`: thousands of long-polling /sync
connections held open at once (`--connections`, growing; the open ones
stay open).

`--fan-users` users (10 connections each, so 1,000 by default: the
fan-out) share one room; the other connections belong to users in no room,
`POLLERS_PER_USER` connections each. Every connection is a loop of long
polls (timeout 5 minutes, a filter of its own so that no server merges
them), each poll from the previous one's token. One aiohttp session with no
connection limit holds them all.

At each size, once all are open (the server's file descriptors counted) and
its memory settled: the server's resident memory grown since before the
first one, per connection. Then the room's owner (not polling) sends one
message: the time from the send's start to each fan-out poll returning with
it (checked by its body), p50/p99, and the CPU per woken poll (server plus
PostgreSQL, from the send's start to the last wake-up).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from _server import V3, Client, gather_limited, register, sync_path
from scale_common import (
    Budget,
    CheckFailed,
    CpuMeter,
    OverBudget,
    PhaseResult,
    Target,
    open_fds,
    profiled,
    quiet_filter,
    rss_kb,
    summary,
)

POLL_MS = 300_000
PER_FAN_USER = 10
POLLERS_PER_USER = 50
OPEN_CHUNK = 250
# Longer than this for a fan-out is a failure, not a figure.
FANOUT_LIMIT_S = 180


class Fleet:
    """The open polls of one server, and the wake-ups they saw."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.tasks: list[asyncio.Task[None]] = []
        # marker body -> (send start, {connection: seconds to wake})
        self.waiting: dict[str, tuple[float, dict[int, float]]] = {}
        self.done = asyncio.Event()
        self.expected = 0
        self.errors: list[str] = []

    def open(self, token: str, since: str, fan: bool) -> None:
        index = len(self.tasks)
        self.tasks.append(asyncio.create_task(self._loop(index, token, since, fan)))

    async def _loop(self, index: int, token: str, since: str, fan: bool) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        filt = quiet_filter(f"c{index}")
        while True:
            url = self.base + sync_path(since, POLL_MS, filt)
            try:
                async with self.http.get(url, headers=headers) as r:
                    body = await r.json(content_type=None)
                    if r.status != 200:
                        self.errors.append(f"{r.status} {body}")
                        return
            except aiohttp.ClientError as e:
                self.errors.append(repr(e))
                return
            since = body["next_batch"]
            if not fan:
                continue
            for room in body.get("rooms", {}).get("join", {}).values():
                for event in room.get("timeline", {}).get("events", []):
                    marker = event.get("content", {}).get("body")
                    if marker in self.waiting:
                        t0, woken = self.waiting[marker]
                        woken.setdefault(index, time.perf_counter() - t0)
                        if len(woken) >= self.expected:
                            self.done.set()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _wait_open(target: Target, fleet: Fleet, fds: int, budget: Budget) -> None:
    """Until the server holds `fds` descriptors (its sockets), then its memory settles."""
    while open_fds(target.pid) < fds:
        if fleet.errors:
            raise CheckFailed(f"connections phase, {target.name}: {fleet.errors[:3]}")
        if budget.exhausted:
            raise OverBudget
        await asyncio.sleep(0.2)
    last = rss_kb(target.pid)
    for _ in range(20):
        await asyncio.sleep(0.5)
        now = rss_kb(target.pid)
        if abs(now - last) < max(256, last // 200):
            break
        last = now


async def _first_syncs(client: Client, tokens: list[str], sinces: dict[str, str]) -> None:
    """Each user's first /sync token, where its polls start from."""
    for token in tokens:
        first = await client.call("GET", sync_path(filter=quiet_filter("first")), token)
        sinces[token] = first["next_batch"]


async def run(
    client: Client,
    target: Target,
    sizes: list[int],
    fan_users: int,
    budget: Budget,
) -> PhaseResult:
    result = PhaseResult()
    fan_out = fan_users * PER_FAN_USER
    _, owner_token = await register(client, "conn_owner")
    room = (await client.call("POST", f"{V3}/createRoom", owner_token, {"preset": "public_chat"}))[
        "room_id"
    ]
    fans = await gather_limited(16, [register(client, f"conn_f{i}") for i in range(fan_users)])
    await gather_limited(
        16, [client.call("POST", f"{V3}/rooms/{room}/join", t, {}) for _, t in fans]
    )
    sinces: dict[str, str] = {}
    await _first_syncs(client, [t for _, t in fans], sinces)
    others: list[tuple[str, str]] = []
    base_fds, base_rss = open_fds(target.pid), rss_kb(target.pid)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, connect=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        fleet = Fleet(http, client.base)
        try:
            # The fan-out connections first, then the others.
            plan = [(t, True) for _, t in fans for _ in range(PER_FAN_USER)]
            for size in sizes:
                if size < fan_out:
                    raise CheckFailed(f"--connections {size} is below the fan-out of {fan_out}")
                t0 = time.perf_counter()
                try:
                    # The users of the other polls, as this size needs them.
                    needed = -(-(size - fan_out) // POLLERS_PER_USER)
                    while len(others) < needed:
                        if budget.exhausted:
                            raise OverBudget
                        made = await gather_limited(
                            16,
                            [
                                register(client, f"conn_o{i}")
                                for i in range(len(others), min(needed, len(others) + 20))
                            ],
                        )
                        await _first_syncs(client, [t for _, t in made], sinces)
                        others += made
                        plan += [(t, False) for _, t in made for _ in range(POLLERS_PER_USER)]
                    while len(fleet.tasks) < size:
                        for token, fan in plan[
                            len(fleet.tasks) : min(size, len(fleet.tasks) + OPEN_CHUNK)
                        ]:
                            fleet.open(token, sinces[token], fan)
                        await _wait_open(
                            target, fleet, base_fds + int(len(fleet.tasks) * 0.98), budget
                        )
                except OverBudget:
                    # Measured with the connections the server holds, then no further.
                    result.stopped_by_budget = True
                    size = min(len(fleet.tasks), open_fds(target.pid) - base_fds)
                    print(f"    {target.name}: connections stopped by its budget at {size}")
                    if (result.points and result.points[-1]["size"] >= size) or size <= 0:
                        break
                point: dict[str, Any] = {
                    "size": size,
                    "open_seconds": round(time.perf_counter() - t0, 1),
                    "rss_mb": round(rss_kb(target.pid) / 1024, 1),
                    "kb_per_connection": round((rss_kb(target.pid) - base_rss) / size, 2),
                }
                marker = f"fan-out at {size}"
                woken: dict[int, float] = {}
                # Every fan-out poll opened (all of them unless a budget ran out).
                fleet.expected = min(fan_out, len(fleet.tasks))
                fleet.done.clear()
                async with profiled(target, f"connections-fanout-{size}"):
                    meter = CpuMeter(target)
                    await meter.start()
                    start = time.perf_counter()
                    fleet.waiting[marker] = (start, woken)
                    await client.call(
                        "PUT",
                        f"{V3}/rooms/{room}/send/m.room.message/fan{size}",
                        owner_token,
                        {"msgtype": "m.text", "body": marker},
                    )
                    try:
                        await asyncio.wait_for(fleet.done.wait(), FANOUT_LIMIT_S)
                    except TimeoutError:
                        # Polls the server had not even accepted when a budget
                        # ran out may miss the limit; otherwise it is a failure.
                        if not result.stopped_by_budget or not woken:
                            raise CheckFailed(
                                f"connections phase, {target.name}: {len(woken)} of "
                                f"{fleet.expected} polls woke with the message within "
                                f"{FANOUT_LIMIT_S} s"
                            ) from None
                    cpu = await meter.stop()
                point["fanout"] = summary(list(woken.values()), [cpu / max(len(woken), 1)])
                point["fanout"]["woken"] = len(woken)
                point["fanout"]["expected"] = fleet.expected
                result.points.append(point)
                print(
                    f"    {target.name}: {size} connections open ({point['rss_mb']} MB, "
                    f"{point['kb_per_connection']} KB each): fan-out to {len(woken)} p50 "
                    f"{point['fanout']['p50_ms']} ms, p99 {point['fanout']['p99_ms']} ms",
                    flush=True,
                )
                if result.stopped_by_budget:
                    break
                # Back to all parked before the next size: the woken polls re-poll.
                await asyncio.sleep(0.5)
        finally:
            await fleet.close()
    return result
