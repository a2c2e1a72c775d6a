"""Benchmark: the /sync wake-up latency a cluster adds across processes.

Two server processes of one deployment (cluster mode, instances "a" and "b")
share one database. Two users long-poll /sync, one on each process; user A
sends a message through process a into a room they share; the figure is the
time from the start of A's send to each /sync returning with that event
(checked in the response before it counts), each next poll starting from
the returned token. The same messages give the same-process (a -> a) and
the cross-process (a -> b) figure, so their difference, message by message,
is what crossing adds, whatever the machine's load does meanwhile. For
reference, with one process outside cluster mode and one alone in cluster
mode (no other writer to wait for), each on a database of its own.

The database is HOMESERVER_TEST_DSN's server (a new database on it) or an
embedded PostgreSQL in a temporary directory.

Run: PYTHONPATH=$PWD .venv/bin/python bench/cluster_wakeup.py [--iterations 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
from _server import (
    V3,
    Client,
    _create_database,
    _database_url,
    _make_key_files,
    _serve,
    percentile,
    register,
    server_config,
    sync_path,
)

from storage.database import EmbeddedPostgres


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """The admin DSN of a PostgreSQL server: the configured one or an embedded one."""
    admin = os.environ.get("HOMESERVER_TEST_DSN")
    if admin:
        yield admin
        return
    with tempfile.TemporaryDirectory(prefix="bench-cluster-pg-") as pgdata:
        embedded = EmbeddedPostgres(Path(pgdata))
        try:
            yield embedded.start()
        finally:
            embedded.stop()


@contextlib.contextmanager
def servers(admin: str, name: str, instances: list[str | None]) -> Iterator[list[int]]:
    """Server processes on one new database (instance None: not in a
    cluster); yields their client ports."""
    dsn = _database_url(admin, name)
    asyncio.run(_create_database(admin, name))
    spawn = multiprocessing.get_context("spawn")
    children = []
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as data_dir:
            base = server_config(data_dir, dsn, 10)
            keys = spawn.Process(target=_make_key_files, args=(base,))
            keys.start()
            keys.join()
            ports = []
            for instance in instances:
                config = dict(base)
                if instance is not None:
                    config["cluster"] = {"enabled": True, "instance_name": instance}
                parent, child = spawn.Pipe()
                process = spawn.Process(target=_serve, args=(config, child))
                process.start()
                children.append((parent, process))
                # One at a time: the first migrates the database.
                ports.append(parent.recv())
            yield ports
    finally:
        for parent, process in children:
            if process.is_alive():
                parent.send("exit")
            process.join(timeout=60)
        asyncio.run(_create_database(admin, name, drop=True))


async def _poll_until(
    client: Client, token: str, since: str, room_id: str, body: str
) -> tuple[float, str]:
    """Long-poll from `since` until `body` arrives: (when, the next token)."""
    while True:
        response = await client.call("GET", sync_path(since, timeout_ms=30_000), token)
        since = response["next_batch"]
        room = response.get("rooms", {}).get("join", {}).get(room_id, {})
        if body in [e["content"].get("body") for e in room.get("timeline", {}).get("events", [])]:
            return time.perf_counter(), since


def local(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def wakeups(
    sender: str,
    pollers_at: list[str],
    iterations: int,
    room_wanted: Callable[[str], bool] = lambda _: True,
) -> list[list[float]]:
    """Each message, sent through the server at URL `sender`, wakes one
    poller per URL of `pollers_at` at once; per poller, the latencies. The
    room is created again until `room_wanted` accepts its id (a deployment
    picks a room owned by the sending process)."""
    async with aiohttp.ClientSession() as http:
        sending = Client(http, sender)
        polling = [Client(http, url) for url in pollers_at]
        suffix = time.monotonic_ns()
        alice, alice_token = await register(sending, f"alice_{suffix}")
        while True:
            room = await sending.call(
                "POST", f"{V3}/createRoom", alice_token, {"preset": "public_chat"}
            )
            room_id = room["room_id"]
            if room_wanted(room_id):
                break
        pollers = []
        for i, client in enumerate(polling):
            _, token = await register(sending, f"bob{i}_{suffix}")
            await sending.call("POST", f"{V3}/join/{room_id}", token, {})
            pollers.append((client, token))
        # Each poller starts from a token past the joins (its own process's view).
        await sending.call(
            "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/start", alice_token, {"body": "s"}
        )
        sinces = []
        for client, token in pollers:
            first = await client.call("GET", sync_path(), token)
            since = first["next_batch"]
            bodies = [
                e["content"].get("body")
                for e in first.get("rooms", {})
                .get("join", {})
                .get(room_id, {})
                .get("timeline", {})
                .get("events", [])
            ]
            if "s" not in bodies:
                _, since = await _poll_until(client, token, since, room_id, "s")
            sinces.append(since)
        latencies: list[list[float]] = [[] for _ in pollers]
        for i in range(iterations):
            body = f"m{i}"
            polls = [
                asyncio.create_task(_poll_until(client, token, since, room_id, body))
                for (client, token), since in zip(pollers, sinces, strict=True)
            ]
            # Let the polls park (their first look finds nothing new).
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            await sending.call(
                "PUT",
                f"{V3}/rooms/{room_id}/send/m.room.message/t{i}",
                alice_token,
                {"msgtype": "m.text", "body": body},
            )
            for n, poll in enumerate(polls):
                woken, sinces[n] = await poll
                latencies[n].append(woken - started)
        return latencies


async def measure(
    sending: Client,
    polling: Client,
    alice_token: str,
    bob_token: str,
    room_id: str,
    iterations: int,
) -> list[float]:
    """Seconds from the start of each of Alice's sends (through `sending`) to
    Bob's long poll (through `polling`) returning with it; both in `room_id`.

    Apart from `wakeups` so that bench/deployment.py can pick its own poller."""
    since = (await polling.call("GET", sync_path(), bob_token))["next_batch"]
    # Unique per call: a repeated transaction id would answer with the old event.
    tag = time.monotonic_ns()
    latencies = []
    for i in range(iterations):
        poll = asyncio.create_task(
            polling.call("GET", sync_path(since, timeout_ms=30_000), bob_token)
        )
        # Let the poll park (its first look finds nothing new).
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        await sending.call(
            "PUT",
            f"{V3}/rooms/{room_id}/send/m.room.message/t{tag}_{i}",
            alice_token,
            {"msgtype": "m.text", "body": f"m{tag}_{i}"},
        )
        while True:
            response = await poll
            since = response["next_batch"]
            events = response.get("rooms", {}).get("join", {}).get(room_id, {})
            bodies = [
                e["content"].get("body") for e in events.get("timeline", {}).get("events", [])
            ]
            if f"m{tag}_{i}" in bodies:
                break
            poll = asyncio.create_task(
                polling.call("GET", sync_path(since, timeout_ms=30_000), bob_token)
            )
        latencies.append(time.perf_counter() - started)
    return latencies


def line(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"{name:<34} p50 {percentile(ordered, 0.5) * 1000:6.2f} ms   "
        f"p99 {percentile(ordered, 0.99) * 1000:6.2f} ms   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with postgres() as admin:
        with servers(admin, f"bench_single_{os.getpid()}", [None]) as (port,):
            asyncio.run(wakeups(local(port), [local(port)], 5))  # warm-up
            (results["one process, no cluster"],) = asyncio.run(
                wakeups(local(port), [local(port)], args.iterations)
            )
        with servers(admin, f"bench_alone_{os.getpid()}", ["a"]) as (port,):
            asyncio.run(wakeups(local(port), [local(port)], 5))
            (results["cluster mode, one process"],) = asyncio.run(
                wakeups(local(port), [local(port)], args.iterations)
            )
        with servers(admin, f"bench_cluster_{os.getpid()}", ["a", "b"]) as (a, b):
            asyncio.run(wakeups(local(a), [local(a), local(b)], 5))
            # The same messages wake a poller on each process: the pairs
            # differ by the crossing alone, whatever the machine's load does.
            same, cross = asyncio.run(wakeups(local(a), [local(a), local(b)], args.iterations))
            results["cluster, same process (a -> a)"] = same
            results["cluster, across processes (a -> b)"] = cross
    for name, values in results.items():
        print(line(name, values))
    added = sorted(c - s for s, c in zip(same, cross, strict=True))
    print(
        f"added across processes (paired, same messages): p50 {percentile(added, 0.5) * 1000:+.2f} ms"
        f"  p99 {percentile(added, 0.99) * 1000:+.2f} ms  (goal: p50 < 5 ms)"
    )


if __name__ == "__main__":
    main()
