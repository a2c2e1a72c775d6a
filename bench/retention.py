"""Retention purge throughput, and the server's responsiveness while it runs.

The server runs in this process (the purge job is part of it, as in
production), on a fresh database; the load (a user sending messages and
syncing, one request at a time) runs in a child process so that its timing
is not skewed by this event loop. Setup: `--rooms` rooms with
`m.room.retention` max_lifetime of a day, each with a real message, which is
then copied in SQL `--events / --rooms` times as if sent two days ago (the
copies have negative stream orderings, as backfilled history, and search
rows). Then the load runs `--seconds` while idle and again for as long as
the job takes to purge everything, and the figures are printed: events
purged per second, and p50/p99 of send and /sync for both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import aiohttp
from _server import V3, Client, _create_database, _database_url, percentile, server_config

from homeserver.config import config_from_dict
from homeserver.server import HomeServer
from storage.database import now_ms

DAY = 24 * 60 * 60 * 1000


async def _setup(client: Client, rooms: int) -> tuple[str, list[str]]:
    body = await client.call(
        "POST",
        f"{V3}/register",
        body={"username": "bench", "password": "secret", "auth": {"type": "m.login.dummy"}},
    )
    token = body["access_token"]
    room_ids = []
    for i in range(rooms):
        created = await client.call(
            "POST",
            f"{V3}/createRoom",
            token,
            {
                "initial_state": [
                    {"type": "m.room.retention", "state_key": "", "content": {"max_lifetime": DAY}}
                ]
            },
        )
        room_id = created["room_id"]
        await client.call(
            "PUT",
            f"{V3}/rooms/{quote(room_id)}/send/m.room.message/seed{i}",
            token,
            {"msgtype": "m.text", "body": f"seed message of room {i}"},
        )
        room_ids.append(room_id)
    return token, room_ids


async def _fill(server: HomeServer, room_ids: list[str], per_room: int) -> None:
    """Copy each room's seed message `per_room` times, two days old, in SQL."""
    assert server.pool is not None
    old = now_ms() - 2 * DAY
    for n, room_id in enumerate(room_ids):
        async with server.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO events (event_id, room_id, type, state_key, sender, depth,
                       origin_server_ts, stream_ordering, json, outlier, state_group)
                   SELECT '$bench_' || $2::int || '_' || g, e.room_id, e.type, NULL, e.sender,
                          e.depth, $3::bigint + g, -(1000000000::bigint + $2::bigint * $4 + g),
                          e.json, TRUE, e.state_group
                   FROM events e, generate_series(1, $4) AS g
                   WHERE e.room_id = $1 AND e.type = 'm.room.message'""",
                room_id,
                n,
                old,
                per_room,
            )
            await conn.execute(
                """INSERT INTO event_search (event_id, room_id, sender, key, vector,
                       stream_ordering, origin_server_ts)
                   SELECT e.event_id, e.room_id, e.sender, 'content.body',
                          to_tsvector('english', 'seed message ' || e.event_id),
                          e.stream_ordering, e.origin_server_ts
                   FROM events e WHERE e.room_id = $1 AND e.event_id LIKE '$bench_%'""",
                room_id,
            )
    # Statistics as a server that grew slowly has them (autovacuum would
    # otherwise analyze the tables in the middle of the idle phase).
    await server.pool.execute("VACUUM ANALYZE events")
    await server.pool.execute("VACUUM ANALYZE event_search")


async def _load(url: str, token: str, room_id: str, conn: Connection) -> dict[str, list[float]]:
    """Send a message and sync (timeout 0) in turn until told to stop; the latencies."""
    sends: list[float] = []
    syncs: list[float] = []
    async with aiohttp.ClientSession() as http:
        client = Client(http, url)
        since = (await client.call("GET", f"{V3}/sync?timeout=0", token))["next_batch"]
        conn.send("started")
        i = 0
        while not conn.poll():
            i += 1
            start = time.monotonic()
            await client.call(
                "PUT",
                f"{V3}/rooms/{quote(room_id)}/send/m.room.message/load{os.getpid()}_{i}_{start}",
                token,
                {"msgtype": "m.text", "body": f"load {i}"},
            )
            sends.append(time.monotonic() - start)
            start = time.monotonic()
            body = await client.call("GET", f"{V3}/sync?timeout=0&since={since}", token)
            syncs.append(time.monotonic() - start)
            since = body["next_batch"]
    return {"send": sends, "sync": syncs}


def _load_child(url: str, token: str, room_id: str, conn: Connection) -> None:
    conn.send(asyncio.run(_load(url, token, room_id, conn)))


def _figures(name: str, latencies: dict[str, list[float]]) -> dict[str, float]:
    out = {}
    for kind, values in latencies.items():
        values.sort()
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        out[kind] = p99
        print(f"{name:8} {kind:5} n={len(values):5}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    return out


async def _run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    server = HomeServer(config_from_dict(config))
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.client_port}"
        async with aiohttp.ClientSession() as http:
            token, room_ids = await _setup(Client(http, url), args.rooms)
        start = time.monotonic()
        await _fill(server, room_ids, args.events // args.rooms)
        total = (args.events // args.rooms) * args.rooms
        print(
            f"setup: {args.rooms} rooms, {total} expired events in {time.monotonic() - start:.1f}s"
        )
        spawn = multiprocessing.get_context("spawn")

        async def measure(during: Any) -> tuple[dict[str, list[float]], Any]:
            """The load's latencies while `during()` runs."""
            parent, child = spawn.Pipe()
            process = spawn.Process(target=_load_child, args=(url, token, room_ids[0], child))
            process.start()
            await asyncio.to_thread(parent.recv)
            result = await during()
            parent.send("stop")
            latencies = await asyncio.to_thread(parent.recv)
            process.join()
            return latencies, result

        idle, _ = await measure(lambda: asyncio.sleep(args.seconds))

        async def purge() -> tuple[int, float]:
            begin = time.monotonic()
            result = await server.purge_job.run_once(now_ms())
            return result.expired, time.monotonic() - begin

        busy, (purged, seconds) = await measure(purge)
        print(f"purged {purged} events in {seconds:.1f}s: {purged / seconds:.0f} events/s")
        idle_p99 = _figures("idle", idle)
        busy_p99 = _figures("purging", busy)
        for kind in ("send", "sync"):
            print(f"p99 {kind} during the purge: {busy_p99[kind] / idle_p99[kind]:.2f}x idle")
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=100, help="rooms with a retention policy")
    parser.add_argument("--events", type=int, default=100_000, help="expired events in all")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the idle phase")
    parser.add_argument("--batch-size", type=int, default=100, help="retention.purge_batch_size")
    parser.add_argument("--pool-size", type=int, default=20, help="server's PostgreSQL pool")
    parser.add_argument(
        "--pause-factor", type=float, default=1.0, help="retention.purge_pause_factor"
    )
    args = parser.parse_args()
    admin_dsn = os.environ.get("HOMESERVER_TEST_DSN")
    db_name = f"bench_retention_{os.getpid()}"
    if admin_dsn:
        asyncio.run(_create_database(admin_dsn, db_name))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-retention-") as data_dir:
            config = server_config(
                data_dir, _database_url(admin_dsn, db_name) if admin_dsn else None, args.pool_size
            )
            config["retention"] = {
                "enabled": True,
                "purge_interval_ms": DAY,
                "purge_batch_size": args.batch_size,
                "purge_pause_factor": args.pause_factor,
            }
            asyncio.run(_run(args, config))
    finally:
        if admin_dsn:
            asyncio.run(_create_database(admin_dsn, db_name, drop=True))


if __name__ == "__main__":
    main()
