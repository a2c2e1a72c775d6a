"""Phase "account" of `scale.py`: one user in more and more rooms
(`--rooms`, 10 first: the baseline the issue's goal compares with).

The user creates each room (private, named, a nonce in its create event so
that no two are alike); `--concurrency` creations in flight. At each size,
each request checked:

- initial /sync (timeline limit 1, a filter of its own per request): every
  room in it;
- incremental /sync with one new message: the user sends into one of the
  rooms, then /sync?since=<the token before the send>, timed alone; the
  message must be in that room's timeline;
- the first sliding-sync request of a new connection (the unstable
  simplified MSC3575 endpoint, as `sliding_sync.py`): 20 rooms, one
  timeline event each, the list's count every room.
"""

from __future__ import annotations

import time
from typing import Any

import sliding_sync
from _server import V3, Client, gather_limited, register, sync_path
from scale_common import (
    Budget,
    CheckFailed,
    OverBudget,
    PhaseResult,
    Target,
    profiled,
    quiet_filter,
    summary,
    timed,
)

GROW_CHUNK = 100


async def _grow(
    client: Client, token: str, rooms: list[str], size: int, concurrency: int, budget: Budget
) -> None:
    while len(rooms) < size:
        if budget.exhausted:
            raise OverBudget
        start = len(rooms)
        chunk = min(size - start, GROW_CHUNK)
        made = await gather_limited(
            concurrency,
            [
                client.call(
                    "POST",
                    f"{V3}/createRoom",
                    token,
                    {
                        "preset": "private_chat",
                        "name": f"account room {start + i}",
                        "creation_content": {"bench.nonce": start + i},
                    },
                )
                for i in range(chunk)
            ],
        )
        rooms.extend(m["room_id"] for m in made)


async def _initial(
    client: Client, target: Target, token: str, rooms: list[str], runs: int, size: int
) -> dict[str, Any]:
    seconds, cpu = [], []
    for i in range(runs):
        filt = {
            "presence": {"types": [f"bench.nonce.{size}.{i}"]},
            "room": {"timeline": {"limit": 1}},
        }
        resp, s, c = await timed(target, client.call("GET", sync_path(filter=filt), token))
        joined = resp.get("rooms", {}).get("join", {})
        if set(rooms) - set(joined):
            raise CheckFailed(
                f"account phase, {target.name}: initial sync lists {len(joined)} of "
                f"{len(rooms)} rooms"
            )
        seconds.append(s)
        cpu.append(c)
    return summary(seconds, cpu)


async def _incremental(
    client: Client, target: Target, token: str, rooms: list[str], runs: int, size: int
) -> dict[str, Any]:
    # A filter of its own per request: Synapse answers a request like one
    # of the last two minutes (same since, same filter) from its cache.
    since = (await client.call("GET", sync_path(filter=quiet_filter(f"i{size}")), token))[
        "next_batch"
    ]
    seconds, cpu = [], []
    for i in range(runs):
        room = rooms[(i * 7919) % len(rooms)]
        sent = await client.call(
            "PUT",
            f"{V3}/rooms/{room}/send/m.room.message/inc{size}.{i}",
            token,
            {"msgtype": "m.text", "body": f"incremental {size} {i}"},
        )
        resp, s, c = await timed(
            target,
            client.call("GET", sync_path(since, filter=quiet_filter(f"i{size}.{i}", 10)), token),
        )
        events = resp.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
        if sent["event_id"] not in {e["event_id"] for e in events.get("events", [])}:
            raise CheckFailed(
                f"account phase, {target.name}: incremental sync without {sent['event_id']} "
                f"(run {i}, room {room}): {str(resp)[:1500]}"
            )
        seconds.append(s)
        cpu.append(c)
        since = resp["next_batch"]
    return summary(seconds, cpu)


async def _sliding_first(
    client: Client, target: Target, token: str, rooms: list[str], runs: int, size: int
) -> dict[str, Any]:
    seconds, cpu = [], []
    for i in range(runs):
        resp, s, c = await timed(
            target,
            client.call(
                "POST", sliding_sync._path(), token, sliding_sync._body(f"scale{size}.{i}")
            ),
        )
        sliding_sync.check_first(resp, len(rooms), f"account phase, {target.name}")
        seconds.append(s)
        cpu.append(c)
    return summary(seconds, cpu)


async def run(
    client: Client, target: Target, sizes: list[int], runs: int, concurrency: int, budget: Budget
) -> PhaseResult:
    result = PhaseResult()
    _, token = await register(client, "account_owner")
    rooms: list[str] = []
    for size in sizes:
        t0 = time.perf_counter()
        try:
            await _grow(client, token, rooms, size, concurrency, budget)
        except OverBudget:
            # Measured at the size reached, then no further.
            result.stopped_by_budget = True
            print(f"    {target.name}: account stopped by its budget at {len(rooms)} rooms")
            if result.points and result.points[-1]["size"] >= len(rooms):
                break
            size = len(rooms)
        point: dict[str, Any] = {"size": size, "grow_seconds": round(time.perf_counter() - t0, 1)}
        async with profiled(target, f"account-initial-{size}"):
            point["initial_sync"] = await _initial(client, target, token, rooms, runs, size)
        async with profiled(target, f"account-incremental-{size}"):
            point["incremental_sync"] = await _incremental(client, target, token, rooms, runs, size)
        point["sliding_first"] = await _sliding_first(client, target, token, rooms, runs, size)
        result.points.append(point)
        print(
            f"    {target.name}: {size} rooms: initial {point['initial_sync']['p50_ms']} ms "
            f"/ {point['initial_sync']['cpu_ms']} CPU, incremental "
            f"{point['incremental_sync']['p50_ms']} / {point['incremental_sync']['cpu_ms']}, "
            f"sliding first {point['sliding_first']['p50_ms']} / "
            f"{point['sliding_first']['cpu_ms']}",
            flush=True,
        )
        if result.stopped_by_budget:
            break
    return result
