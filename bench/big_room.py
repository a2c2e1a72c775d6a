"""Benchmark: one public room growing to many members through client-API joins.

Users register, one creates a public room, and the others join it one after
another (a few in flight). At each size of `--sizes` the script measures
`--samples` joins and then as many messages, one at a time: the latency of
each, the CPU time of the server and of its PostgreSQL backends per
operation, the rows written per operation (inserted, updated and deleted, by
table, from pg_stat_user_tables), and the bytes and rows of the state tables.
A cost that grows with the room's size shows as a ratio above 1 in the last
table (largest size against smallest).

Run: .venv/bin/python bench/big_room.py [--sizes 100,1000,10000] [--samples 10]
     [--concurrency 8] [--profile join|message]

`--profile` runs the server under cProfile during the measured joins (or
messages) at the largest size and prints where its time went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import aiohttp
import asyncpg
from _server import V3, Client, ServerProcess, _database_url, gather_limited, running_server
from compare import _postgres

_STATE_TABLES = ("state_groups", "state_group_entries", "current_state")
_STATS_FLUSH_S = 11.0


async def _table_writes(db: asyncpg.Connection) -> dict[str, int]:
    """Rows inserted + updated + deleted so far, per table (only tables written)."""
    rows = await db.fetch(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_user_tables"
    )
    return {r["relname"]: r["n"] for r in rows if r["n"]}


async def _settled_writes(db: asyncpg.Connection) -> dict[str, int]:
    """The table counters once the server's backends have flushed theirs.

    A backend publishes its counts when it goes idle, but at most once a
    second; counts held back that way are published by its idle timer, ten
    seconds later (PostgreSQL's PGSTAT_IDLE_INTERVAL). So wait that long."""
    await asyncio.sleep(_STATS_FLUSH_S)
    await db.execute("SELECT pg_stat_clear_snapshot()")
    return await _table_writes(db)


async def _state_sizes(db: asyncpg.Connection) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for table in _STATE_TABLES:
        sizes[f"{table}_bytes"] = await db.fetchval(
            "SELECT pg_total_relation_size($1::regclass)", table
        )
        sizes[f"{table}_rows"] = await db.fetchval(f"SELECT count(*) FROM {table}")
    return sizes


async def _measure(
    server: ServerProcess,
    db: asyncpg.Connection,
    ops: list[Any],
    profile: bool,
    before: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run the operations one at a time; their latency, CPU and rows written."""
    before = await _settled_writes(db) if before is None else before
    latencies = []
    server.start(profile=profile)
    for op in ops:
        t0 = time.perf_counter()
        await op()
        latencies.append(time.perf_counter() - t0)
    report = server.stop()
    after = await _settled_writes(db)
    n = len(ops)
    writes = {t: (after.get(t, 0) - before.get(t, 0)) / n for t in after}
    writes = {t: v for t, v in sorted(writes.items(), key=lambda kv: -kv[1]) if v}
    figures: dict[str, Any] = {
        "latency_ms": statistics.fmean(latencies) * 1000,
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "server_cpu_ms": report["cpu"] / n * 1000,
        "pg_cpu_ms": (report["pg_cpu"] or 0.0) / n * 1000,
        "rows_written": sum(writes.values()),
        "rows_by_table": writes,
        "_after": after,
    }
    figures["cpu_ms"] = figures["server_cpu_ms"] + figures["pg_cpu_ms"]
    if "profile" in report:
        figures["profile"] = report["profile"]
    return figures


async def _run(args: argparse.Namespace, server: ServerProcess, admin_dsn: str) -> dict[str, Any]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    samples = args.samples
    total_users = sizes[-1] + samples * len(sizes) + 1
    db = await asyncpg.connect(_database_url(admin_dsn, server.database))
    connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
    timeout = aiohttp.ClientTimeout(total=600)
    results: dict[str, Any] = {"sizes": {}}
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            client = Client(http, server.url)
            t0 = time.perf_counter()
            users = await gather_limited(
                args.concurrency,
                [
                    client.call(
                        "POST",
                        f"{V3}/register",
                        body={
                            "username": f"m{i}",
                            "password": "pw",
                            "auth": {"type": "m.login.dummy"},
                            "inhibit_login": False,
                        },
                    )
                    for i in range(total_users)
                ],
            )
            tokens = [u["access_token"] for u in users]
            print(f"registered {total_users} users in {time.perf_counter() - t0:.1f}s", flush=True)
            owner = tokens[0]
            room = (
                await client.call("POST", f"{V3}/createRoom", owner, {"preset": "public_chat"})
            )["room_id"]
            next_user = 1
            members = 1
            sent = 0

            def join_op(token: str) -> Any:
                return lambda: client.call("POST", f"{V3}/rooms/{room}/join", token, {})

            for size in sizes:
                t0 = time.perf_counter()
                fill = tokens[next_user : next_user + max(0, size - members)]
                await gather_limited(
                    args.concurrency,
                    [client.call("POST", f"{V3}/rooms/{room}/join", t, {}) for t in fill],
                )
                next_user += len(fill)
                members += len(fill)
                print(
                    f"{members} members ({len(fill)} joins in {time.perf_counter() - t0:.1f}s)",
                    flush=True,
                )
                largest = size == sizes[-1]
                joins = [join_op(t) for t in tokens[next_user : next_user + samples]]
                next_user += samples
                join = await _measure(server, db, joins, profile=largest and args.profile == "join")
                members += samples

                def message_op(n: int) -> Any:
                    return lambda: client.call(
                        "PUT",
                        f"{V3}/rooms/{room}/send/m.room.message/big{n}",
                        owner,
                        {"msgtype": "m.text", "body": f"message {n}"},
                    )

                messages = [message_op(sent + i) for i in range(samples)]
                sent += samples
                message = await _measure(
                    server,
                    db,
                    messages,
                    profile=largest and args.profile == "message",
                    before=join.pop("_after"),
                )
                message.pop("_after")
                state = await _state_sizes(db)
                results["sizes"][str(size)] = {"join": join, "message": message, "state": state}
                _print_size(size, join, message, state)
    finally:
        await db.close()
    _print_ratios(results, sizes)
    return results


def _print_size(
    size: int, join: dict[str, Any], message: dict[str, Any], state: dict[str, int]
) -> None:
    for name, f in (("join", join), ("message", message)):
        top = ", ".join(f"{t} {v:.1f}" for t, v in list(f["rows_by_table"].items())[:6])
        print(
            f"  {size:>6} {name:<7}: {f['latency_ms']:7.1f} ms latency, cpu {f['cpu_ms']:6.2f} ms "
            f"(server {f['server_cpu_ms']:.2f}, pg {f['pg_cpu_ms']:.2f}), "
            f"{f['rows_written']:.1f} rows written ({top})",
            flush=True,
        )
        if "profile" in f:
            print(f["profile"])
    print(
        "  state: "
        + ", ".join(
            f"{t} {state[t + '_rows']} rows {state[t + '_bytes'] / 1e6:.1f} MB"
            for t in _STATE_TABLES
        ),
        flush=True,
    )


def _print_ratios(results: dict[str, Any], sizes: list[int]) -> None:
    small, large = results["sizes"][str(sizes[0])], results["sizes"][str(sizes[-1])]
    print(f"\nratios, {sizes[-1]} members against {sizes[0]} (goal: 1.5x or less)")
    for op in ("join", "message"):
        for key in ("latency_ms", "cpu_ms", "rows_written"):
            a, b = small[op][key], large[op][key]
            print(f"  {op:<7} {key:<13} {a:8.2f} -> {b:8.2f}  {b / a if a else float('nan'):.2f}x")
    state_bytes = sum(small["state"][f"{t}_bytes"] for t in _STATE_TABLES)
    state_bytes_large = sum(large["state"][f"{t}_bytes"] for t in _STATE_TABLES)
    entries = small["state"]["state_group_entries_rows"]
    entries_large = large["state"]["state_group_entries_rows"]
    print(
        f"  state bytes {state_bytes / 1e6:.1f} MB -> {state_bytes_large / 1e6:.1f} MB, "
        f"state_group_entries rows {entries} -> {entries_large} "
        f"({entries_large / max(1, sizes[-1]):.1f} per member)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="member counts measured at")
    parser.add_argument("--samples", type=int, default=10, help="joins and messages measured")
    parser.add_argument("--concurrency", type=int, default=8, help="joins in flight when filling")
    parser.add_argument("--pool-size", type=int, default=10, help="server's PostgreSQL pool")
    parser.add_argument("--profile", choices=("join", "message"), help="cProfile at the top size")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with _postgres() as admin_dsn:
        os.environ["HOMESERVER_TEST_DSN"] = admin_dsn
        with running_server("bigroom", args.pool_size) as server:
            results = asyncio.run(_run(args, server, admin_dsn))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
