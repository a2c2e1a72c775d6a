"""Benchmark: many users sending messages concurrently over loopback.

A server is started in a child process (so that the load generator does not
share its event loop), on a fresh database: the embedded PostgreSQL in a
temporary directory, or a new database on the server named by
HOMESERVER_TEST_DSN. Users register, create and join the rooms, then every
user sends its messages, spread round-robin over the rooms, with at most
`--concurrency` requests in flight. Afterwards every event is read back with
/messages (room, sender and body as sent), and the script prints events per
second and the latency percentiles of the sends.

Run: .venv/bin/python bench/send.py [--users 50] [--rooms 5] [--messages 20]
     [--concurrency 50] [--profile]

--profile runs the server under cProfile and prints where its time went.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
import urllib.parse
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import asyncpg

from homeserver.config import config_from_dict
from homeserver.server import HomeServer

V3 = "/_matrix/client/v3"


def _server_config(data_dir: str, dsn: str | None, pool_size: int) -> dict[str, Any]:
    database: dict[str, Any] = {"min_pool_size": 2, "max_pool_size": pool_size}
    if dsn is not None:
        database["dsn"] = dsn
    return {
        "server_name": "bench.local",
        "data_dir": data_dir,
        "client_listen": "127.0.0.1:0",
        "federation_listen": "127.0.0.1:0",
        "database": database,
        "enable_registration": True,
        "registration_requires_token": False,
        "bcrypt_rounds": 4,
        "rate_limits": {"enabled": False},
    }


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _machine_busy() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _serve(config: dict[str, Any], conn: Connection, profile: bool) -> None:
    """Child process: run the server until "exit"; measure its CPU time (and
    profile it) between "start" and "stop"."""

    async def main() -> None:
        server = HomeServer(config_from_dict(config))
        await server.start()
        conn.send(server.client_port)
        profiler = cProfile.Profile() if profile else None
        while await asyncio.to_thread(conn.recv) == "start":
            cpu = _cpu_seconds()
            if profiler is not None:
                profiler.enable()
            await asyncio.to_thread(conn.recv)
            if profiler is not None:
                profiler.disable()
            report: dict[str, Any] = {"cpu": _cpu_seconds() - cpu}
            if profiler is not None:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(25)
                stats.sort_stats("cumulative").print_stats(40)
                report["profile"] = out.getvalue()
            conn.send(report)
        await server.stop()

    asyncio.run(main())


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
            data = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{method} {path}: {r.status} {data}")
            return data


async def _gather_limited(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def _run(args: argparse.Namespace, port: int) -> None:
    """Register, create and join, send the messages, check them and print the figures."""
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        client = Client(http, f"http://127.0.0.1:{port}")
        started = time.perf_counter()
        users = await _gather_limited(
            args.concurrency,
            [
                client.call(
                    "POST",
                    f"{V3}/register",
                    body={"username": f"u{i}", "password": "pw", "auth": {"type": "m.login.dummy"}},
                )
                for i in range(args.users)
            ],
        )
        tokens = [u["access_token"] for u in users]
        rooms = [
            (await client.call("POST", f"{V3}/createRoom", tokens[0], {"preset": "public_chat"}))[
                "room_id"
            ]
            for _ in range(args.rooms)
        ]
        await _gather_limited(
            args.concurrency,
            [
                client.call("POST", f"{V3}/rooms/{room}/join", token, {})
                for token in tokens[1:]
                for room in rooms
            ],
        )
        print(
            f"setup: {args.users} users, {args.rooms} rooms, "
            f"{(args.users - 1) * args.rooms} joins in {time.perf_counter() - started:.1f}s"
        )

        latencies: list[float] = []
        expected: dict[str, tuple[str, str, str]] = {}

        async def send(user: int, n: int) -> None:
            room = rooms[(user + n) % len(rooms)]
            body = f"message {n} from user {user}"
            t0 = time.perf_counter()
            resp = await client.call(
                "PUT",
                f"{V3}/rooms/{room}/send/m.room.message/b{n}",
                tokens[user],
                {"msgtype": "m.text", "body": body},
            )
            latencies.append(time.perf_counter() - t0)
            expected[resp["event_id"]] = (room, f"@u{user}:bench.local", body)

        # Interleave users so that every room sees concurrent senders.
        jobs = [send(u, n) for n in range(args.messages) for u in range(args.users)]
        args.control.send("start")
        machine, client_cpu, t0 = _machine_busy(), _cpu_seconds(), time.perf_counter()
        await _gather_limited(args.concurrency, jobs)
        elapsed = time.perf_counter() - t0
        client_cpu = _cpu_seconds() - client_cpu
        machine_after = _machine_busy()
        args.control.send("stop")
        server = args.control.recv()
        await _verify(client, tokens[0], rooms, expected)

    total = len(expected)
    latencies.sort()
    print(
        f"sent {total} messages ({args.users} users x {args.messages}, {args.rooms} rooms, "
        f"concurrency {args.concurrency}) in {elapsed:.2f}s: {total / elapsed:.0f} events/s"
    )
    print(
        "latency ms: "
        f"p50 {_percentile(latencies, 0.50) * 1000:.1f}  "
        f"p90 {_percentile(latencies, 0.90) * 1000:.1f}  "
        f"p99 {_percentile(latencies, 0.99) * 1000:.1f}  "
        f"max {latencies[-1] * 1000:.1f}  "
        f"mean {statistics.fmean(latencies) * 1000:.1f}"
    )
    line = (
        f"cpu per message: server {server['cpu'] / total * 1000:.2f} ms, "
        f"load generator {client_cpu / total * 1000:.2f} ms"
    )
    if machine is not None and machine_after is not None:
        busy = (machine_after[0] - machine[0]) / max(1, machine_after[1] - machine[1])
        line += f"; all {os.cpu_count()} CPUs {busy:.0%} busy (PostgreSQL included)"
    print(line)
    if "profile" in server:
        print(server["profile"])


async def _verify(
    client: Client, token: str, rooms: list[str], expected: dict[str, tuple[str, str, str]]
) -> None:
    """Every acknowledged send can be read back with /messages, in its room, with its body."""
    found: dict[str, tuple[str, str, str]] = {}
    messages_filter = urllib.parse.quote('{"types":["m.room.message"]}')
    for room in rooms:
        start = ""
        while True:
            page = await client.call(
                "GET",
                f"{V3}/rooms/{room}/messages?dir=b&limit=1000&filter={messages_filter}{start}",
                token,
            )
            for event in page["chunk"]:
                found[event["event_id"]] = (room, event["sender"], event["content"]["body"])
            if "end" not in page or not page["chunk"]:
                break
            start = f"&from={urllib.parse.quote(page['end'])}"
    if found != expected:
        missing = len(set(expected) - set(found))
        wrong = sum(1 for k, v in found.items() if expected.get(k) != v)
        raise SystemExit(
            f"verification failed: {missing} missing, {wrong} wrong, {len(found)} read back"
        )
    print(f"verified: all {len(expected)} events read back with their room, sender and body")


def _database_url(admin_dsn: str, name: str) -> str:
    base, sep, query = admin_dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}{sep}{query}"


async def _create_database(admin_dsn: str, name: str, drop: bool = False) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20, help="messages per user")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--pool-size", type=int, default=20, help="server's PostgreSQL pool")
    parser.add_argument("--profile", action="store_true", help="cProfile the server")
    args = parser.parse_args()

    admin_dsn = os.environ.get("HOMESERVER_TEST_DSN")
    db_name = f"bench_send_{os.getpid()}"
    dsn = _database_url(admin_dsn, db_name) if admin_dsn else None
    if admin_dsn:
        asyncio.run(_create_database(admin_dsn, db_name))
    with tempfile.TemporaryDirectory(prefix="bench-send-") as data_dir:
        parent, child = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve,
            args=(_server_config(data_dir, dsn, args.pool_size), child, args.profile),
        )
        process.start()
        try:
            port = parent.recv()
            args.control = parent
            asyncio.run(_run(args, port))
        finally:
            if process.is_alive():
                parent.send("exit")
            process.join(timeout=60)
            if admin_dsn:
                asyncio.run(_create_database(admin_dsn, db_name, drop=True))


if __name__ == "__main__":
    main()
