"""Phase "room" of `scale.py`: one public room growing to `--members`
members, every one joining through the client API.

At each size: `--samples` more users join one at a time (each join's
latency and CPU, server plus PostgreSQL), then the owner sends `--samples`
messages one at a time (the same). Around the sample joins: the rows the
server's database wrote (pg_stat_user_tables, per join, after PostgreSQL's
statistics settled) and the WAL written (per join; the PostgreSQL server is
shared, so the other server's background writes count too). Then the total
size of the state tables. Checked at each size: /joined_members lists
exactly the users that joined, and each sample message reads back.
"""

from __future__ import annotations

import time
from typing import Any

from _server import V3, Client, gather_limited, register
from scale_common import (
    Budget,
    CheckFailed,
    OverBudget,
    PhaseResult,
    Target,
    profiled,
    relation_bytes,
    settled_rows_written,
    summary,
    timed,
    wal_bytes,
)

# The tables that hold room state, per server. Ours keep the state
# per event in events.state_group (a column, not counted); Synapse in
# event_to_state_groups (a table, counted).
STATE_TABLES = {
    "ours": ("state_groups", "state_group_entries", "current_state"),
    "Synapse": (
        "state_groups",
        "state_groups_state",
        "state_group_edges",
        "event_to_state_groups",
        "current_state_events",
    ),
}
GROW_CHUNK = 200


async def _grow(
    client: Client,
    room: str,
    members: dict[str, str],
    count: int,
    concurrency: int,
    budget: Budget,
    prefix: str,
) -> None:
    """`count` new users join, `concurrency` at a time, in chunks so that
    the budget is checked as it goes."""
    while count > 0:
        if budget.exhausted:
            raise OverBudget
        chunk = min(count, GROW_CHUNK)
        start = len(members)
        users = await gather_limited(
            concurrency, [register(client, f"{prefix}{start + i}") for i in range(chunk)]
        )
        await gather_limited(
            concurrency,
            [client.call("POST", f"{V3}/rooms/{room}/join", token, {}) for _, token in users],
        )
        members.update(users)
        count -= chunk


async def _check_members(client: Client, room: str, token: str, members: dict[str, str]) -> None:
    joined = (await client.call("GET", f"{V3}/rooms/{room}/joined_members", token))["joined"]
    if set(joined) != set(members):
        raise CheckFailed(
            f"room phase: {len(joined)} joined members listed, {len(members)} joined "
            f"({len(set(members) - set(joined))} missing)"
        )


async def run(
    client: Client, target: Target, sizes: list[int], samples: int, concurrency: int, budget: Budget
) -> PhaseResult:
    result = PhaseResult()
    prefix = "room_m"
    owner, owner_token = await register(client, "room_owner")
    room = (await client.call("POST", f"{V3}/createRoom", owner_token, {"preset": "public_chat"}))[
        "room_id"
    ]
    members = {owner: owner_token}
    for size in sizes:
        t0 = time.perf_counter()
        try:
            await _grow(
                client,
                room,
                members,
                size - samples - len(members),
                concurrency,
                budget,
                prefix,
            )
        except OverBudget:
            # Measured at the size reached, then no further.
            result.stopped_by_budget = True
            print(f"    {target.name}: room stopped by its budget at {len(members)} members")
            if result.points and result.points[-1]["size"] >= len(members) + samples:
                break
        grow_s = time.perf_counter() - t0
        point: dict[str, Any] = {"grow_seconds": round(grow_s, 1)}

        # Sample joins, one at a time; the users are made first.
        joiners = [await register(client, f"{prefix}{len(members) + i}") for i in range(samples)]
        rows0, wal0 = await settled_rows_written(target), await wal_bytes(target)
        seconds, cpu = [], []
        async with profiled(target, f"room-joins-{len(members)}"):
            for user_id, token in joiners:
                _, s, c = await timed(
                    target, client.call("POST", f"{V3}/rooms/{room}/join", token, {})
                )
                seconds.append(s)
                cpu.append(c)
                members[user_id] = token
        wal1 = await wal_bytes(target)
        rows1 = await settled_rows_written(target)
        point["join"] = summary(seconds, cpu)
        point["rows_per_join"] = round((rows1 - rows0) / samples, 1)
        point["wal_kb_per_join"] = round((wal1 - wal0) / samples / 1024, 1)

        seconds, cpu, sent = [], [], []
        for i in range(samples):
            body = {"msgtype": "m.text", "body": f"at {size} members, message {i}"}
            resp, s, c = await timed(
                target,
                client.call(
                    "PUT",
                    f"{V3}/rooms/{room}/send/m.room.message/s{size}m{i}",
                    owner_token,
                    body,
                ),
            )
            seconds.append(s)
            cpu.append(c)
            sent.append((resp["event_id"], body["body"]))
        point["message"] = summary(seconds, cpu)
        for event_id, text in sent:
            got = await client.call("GET", f"{V3}/rooms/{room}/event/{event_id}", owner_token)
            if got.get("content", {}).get("body") != text:
                raise CheckFailed(f"room phase: {event_id} reads back as {got}")
        await _check_members(client, room, owner_token, members)
        point["size"] = len(members)
        point["state_bytes"] = await relation_bytes(target, STATE_TABLES[target.name])
        result.points.append(point)
        print(
            f"    {target.name}: {len(members)} members (grown in {grow_s:.0f}s): join "
            f"{point['join']['p50_ms']} ms / {point['join']['cpu_ms']} ms CPU, message "
            f"{point['message']['p50_ms']} ms / {point['message']['cpu_ms']} ms CPU, "
            f"{point['rows_per_join']} rows/join, state {point['state_bytes'] // 1024} KB",
            flush=True,
        )
        if result.stopped_by_budget:
            break
    return result
