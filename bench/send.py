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
Afterwards bench/floor.py measures the irreducible cost of an event on the
same PostgreSQL setup, and the ratio of ours to it is printed (--no-floor
skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import urllib.parse
from typing import Any

import aiohttp
from _server import (
    V3,
    Client,
    MeasuredServer,
    cpu_seconds,
    gather_limited,
    machine_busy,
    percentile,
    running_server,
)
from floor import describe, measure_floor


async def run_load(args: argparse.Namespace, server: MeasuredServer) -> dict[str, Any]:
    """Register, create and join, send the messages, check them and print the figures.

    Returns the figures; "cpu_ms_per_message" is the CPU milliseconds per
    message of the server and its PostgreSQL backends (None when PostgreSQL
    is not on this machine). bench/deployment.py runs it against a whole
    deployment behind nginx."""
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        client = Client(http, server.url)
        started = time.perf_counter()
        users = await gather_limited(
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
        await gather_limited(
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
        server.start(profile=args.profile)
        machine, client_cpu, t0 = machine_busy(), cpu_seconds(), time.perf_counter()
        await gather_limited(args.concurrency, jobs)
        elapsed = time.perf_counter() - t0
        client_cpu = cpu_seconds() - client_cpu
        machine_after = machine_busy()
        report = server.stop()
        await _verify(client, tokens[0], rooms, expected)

    total = len(expected)
    latencies.sort()
    busy = None
    print(
        f"sent {total} messages ({args.users} users x {args.messages}, {args.rooms} rooms, "
        f"concurrency {args.concurrency}) in {elapsed:.2f}s: {total / elapsed:.0f} events/s"
    )
    print(
        "latency ms: "
        f"p50 {percentile(latencies, 0.50) * 1000:.1f}  "
        f"p90 {percentile(latencies, 0.90) * 1000:.1f}  "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f}  "
        f"max {latencies[-1] * 1000:.1f}  "
        f"mean {statistics.fmean(latencies) * 1000:.1f}"
    )
    line = (
        f"cpu per message: server {report['cpu'] / total * 1000:.2f} ms, "
        f"load generator {client_cpu / total * 1000:.2f} ms"
    )
    if report["pg_cpu"] is not None:
        line += f", PostgreSQL backends {report['pg_cpu'] / total * 1000:.2f} ms"
    if machine is not None and machine_after is not None:
        busy = (machine_after[0] - machine[0]) / max(1, machine_after[1] - machine[1])
        line += f"; all {os.cpu_count()} CPUs {busy:.0%} busy (PostgreSQL included)"
    print(line)
    if "profile" in report:
        print(report["profile"])
    return {
        "messages": total,
        "elapsed_s": elapsed,
        "messages_per_s": total / elapsed,
        "latency_ms": {
            "p50": percentile(latencies, 0.50) * 1000,
            "p90": percentile(latencies, 0.90) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "max": latencies[-1] * 1000,
            "mean": statistics.fmean(latencies) * 1000,
        },
        "server_cpu_ms_per_message": report["cpu"] / total * 1000,
        "pg_cpu_ms_per_message": (
            None if report["pg_cpu"] is None else report["pg_cpu"] / total * 1000
        ),
        "cpu_ms_per_message": (
            None if report["pg_cpu"] is None else (report["cpu"] + report["pg_cpu"]) / total * 1000
        ),
        "load_generator_cpu_ms_per_message": client_cpu / total * 1000,
        "machine_busy": busy,
        **{k: v for k, v in report.items() if k not in ("cpu", "pg_cpu", "profile")},
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20, help="messages per user")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--pool-size", type=int, default=20, help="server's PostgreSQL pool")
    parser.add_argument("--profile", action="store_true", help="cProfile the server")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip bench/floor.py's measurement and the ratio"
    )
    args = parser.parse_args()

    with running_server("send", args.pool_size) as server:
        ours = asyncio.run(run_load(args, server))["cpu_ms_per_message"]
    if args.no_floor:
        return
    # Once the server has stopped, so that the two do not share the CPUs.
    floor = asyncio.run(measure_floor())
    print(describe(floor))
    if ours is not None and floor["pg"] == floor["pg"]:
        print(
            f"cpu per message, server + PostgreSQL: {ours:.2f} ms = "
            f"{ours / floor['total']:.1f}x the floor"
        )


if __name__ == "__main__":
    main()
