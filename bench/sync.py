"""Benchmark: /sync wake-up latency, and initial sync of a user in many rooms.

(a) Wake-up: user B long-polls /sync; user A sends a message into a room they
share; the figure is the time from the start of A's send to B's /sync
returning with that event (checked to be in the response, with its body and
sender, before it counts). B's next long poll starts from the returned token.

(b) Initial sync: user C is in `--rooms` rooms holding `--events` messages
each (sent by C and another user in turn, after the rooms' creation events).
C's initial /sync is timed `--runs` times with each filter: the server's
default, and each of `--limits` as the timeline limit. Every response is
checked: every room present, its timeline exactly the room's last N messages
in order, `limited` set, the room's creation event and C's membership in the
state.

The server runs in a child process on a fresh database (see bench/_server.py);
its CPU time and its PostgreSQL backends' CPU time are measured per operation.

Run: .venv/bin/python bench/sync.py [--iterations 200] [--rooms 100] [--events 50]
     [--runs 10] [--limits 10,50] [--profile initial|wakeup]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp
from _server import (
    V3,
    Client,
    ServerProcess,
    gather_limited,
    percentile,
    register,
    running_server,
    sync_path,
)

from homeserver.sync.rooms import DEFAULT_TIMELINE_LIMIT


def _timeline(response: dict[str, Any], room_id: str) -> dict[str, Any]:
    return response.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {})


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _cpu_line(report: dict[str, Any], count: int) -> str:
    line = f"server cpu {_ms(report['cpu'] / count)} ms"
    if report["pg_cpu"] is not None:
        line += f", PostgreSQL backends {_ms(report['pg_cpu'] / count)} ms"
    return line


async def wakeup_setup(client: Client, prefix: str = "wake") -> dict[str, str]:
    """Users A and B in a room, and B's first sync token: what `wakeup_loop` needs."""
    a, a_token = await register(client, f"{prefix}_a")
    b, b_token = await register(client, f"{prefix}_b")
    room = (await client.call("POST", f"{V3}/createRoom", a_token, {"preset": "public_chat"}))[
        "room_id"
    ]
    await client.call("POST", f"{V3}/rooms/{room}/join", b_token, {})
    since = (await client.call("GET", sync_path(), b_token))["next_batch"]
    return {"a": a, "a_token": a_token, "b": b, "b_token": b_token, "room": room, "since": since}


async def wakeup_loop(
    client: Client, setup: dict[str, str], iterations: int, park_ms: int, tag: str = ""
) -> dict[str, Any]:
    """Time `iterations` wake-ups (send start -> B's long poll returns with the
    event, checked); B's token is carried on in `setup["since"]`.

    Returns the sorted seconds of "wakeup", "after_ack" and "send", and "empty_returns".
    """
    room, since = setup["room"], setup["since"]

    def poll(token: str) -> asyncio.Task[dict[str, Any]]:
        return asyncio.ensure_future(
            client.call("GET", sync_path(token, timeout_ms=30_000), setup["b_token"])
        )

    wakeups: list[float] = []
    after_ack: list[float] = []
    sends: list[float] = []
    empty_returns = 0
    for i in range(iterations):
        waiting = poll(since)
        # Let the long poll reach the server and park before A sends.
        await asyncio.sleep(park_ms / 1000)
        body = f"wake-up {tag}{i}"
        t0 = time.perf_counter()
        sent = await client.call(
            "PUT",
            f"{V3}/rooms/{room}/send/m.room.message/w{tag}{i}",
            setup["a_token"],
            {"msgtype": "m.text", "body": body},
        )
        acked = time.perf_counter()
        while True:
            response = await waiting
            returned = time.perf_counter()
            since = response["next_batch"]
            events = _timeline(response, room).get("events", [])
            if any(
                e["event_id"] == sent["event_id"]
                and e["sender"] == setup["a"]
                and e["content"].get("body") == body
                for e in events
            ):
                break
            # Woken by something else (or before the event was visible): the
            # event must come with the next response.
            empty_returns += 1
            waiting = poll(since)
        wakeups.append(returned - t0)
        after_ack.append(returned - acked)
        sends.append(acked - t0)
    setup["since"] = since
    return {
        "wakeup": sorted(wakeups),
        "after_ack": sorted(after_ack),
        "send": sorted(sends),
        "empty_returns": empty_returns,
    }


async def _wakeup(client: Client, server: ServerProcess, args: argparse.Namespace) -> None:
    """(a) send -> the other user's long poll returns with the event."""
    setup = await wakeup_setup(client)
    server.start(profile=args.profile == "wakeup")
    result = await wakeup_loop(client, setup, args.iterations, args.park_ms)
    report = server.stop()

    wakeups = result["wakeup"]
    n = len(wakeups)
    print(
        f"(a) sync wake-up, {n} messages from {setup['a']} to {setup['b']} "
        f"(long poll parked {args.park_ms} ms before each send)"
    )
    print(f"    {'ms':<40}{'p50':>8}{'p99':>8}{'max':>8}{'mean':>8}")
    for label, values in (
        ("send start -> B's sync returns", wakeups),
        ("send acknowledged -> B's sync returns", result["after_ack"]),
        ("send request", result["send"]),
    ):
        print(
            f"    {label:<40}{_ms(percentile(values, 0.5)):>8}{_ms(percentile(values, 0.99)):>8}"
            f"{_ms(values[-1]):>8}{_ms(statistics.fmean(values)):>8}"
        )
    print(f"    per message (send + wake-up sync): {_cpu_line(report, n)}")
    if result["empty_returns"]:
        print(
            f"    {result['empty_returns']} long polls returned without the event and were repeated"
        )
    if "profile" in report:
        print(report["profile"])


async def _fill_rooms(
    client: Client, args: argparse.Namespace
) -> tuple[str, str, dict[str, list[str]]]:
    """C and D in `--rooms` rooms of `--events` messages: (C's id, C's token,
    room id -> its message event ids in order)."""
    c, c_token = await register(client, "initial_c")
    d, d_token = await register(client, "initial_d")
    # One after the other: the same user creating identical rooms in the same
    # millisecond would give the same create event, hence the same room id.
    rooms = [
        await client.call(
            "POST", f"{V3}/createRoom", d_token, {"preset": "public_chat", "name": f"room {i}"}
        )
        for i in range(args.rooms)
    ]
    room_ids = [r["room_id"] for r in rooms]
    await gather_limited(
        args.concurrency,
        [client.call("POST", f"{V3}/rooms/{room}/join", c_token, {}) for room in room_ids],
    )

    async def fill(room: str) -> list[str]:
        # One sender after the other in a room, so that the order is known;
        # the rooms are filled concurrently.
        ids = []
        for n in range(args.events):
            token = c_token if n % 2 == 0 else d_token
            sent = await client.call(
                "PUT",
                f"{V3}/rooms/{room}/send/m.room.message/m{n}",
                token,
                {"msgtype": "m.text", "body": f"message {n} in {room}"},
            )
            ids.append(sent["event_id"])
        return ids

    started = time.perf_counter()
    filled = await gather_limited(args.concurrency, [fill(room) for room in room_ids])
    elapsed = time.perf_counter() - started
    total = args.rooms * args.events
    print(
        f"    setup: {args.rooms} rooms created by {d}, joined by {c}, "
        f"{total} messages sent in {elapsed:.1f}s ({total / elapsed:.0f} events/s)"
    )
    return c, c_token, dict(zip(room_ids, filled, strict=True))


def _check_initial(
    response: dict[str, Any], user_id: str, rooms: dict[str, list[str]], limit: int
) -> int:
    """Raise unless every room holds its last `limit` messages; return the event count."""
    joined = response.get("rooms", {}).get("join", {})
    missing = set(rooms) - set(joined)
    if missing:
        raise SystemExit(f"initial sync: {len(missing)} of {len(rooms)} rooms missing")
    count = 0
    for room_id, messages in rooms.items():
        entry = joined[room_id]
        timeline = entry.get("timeline", {})
        got = [e["event_id"] for e in timeline.get("events", [])]
        if got != messages[-limit:]:
            raise SystemExit(
                f"initial sync: {room_id} has {len(got)} timeline events, "
                f"expected its last {limit} messages in order"
            )
        if timeline.get("limited") is not True:
            raise SystemExit(f"initial sync: {room_id} timeline is not marked limited")
        state = {(e["type"], e["state_key"]): e for e in entry.get("state", {}).get("events", [])}
        member = state.get(("m.room.member", user_id))
        if ("m.room.create", "") not in state or member is None:
            raise SystemExit(f"initial sync: {room_id} state lacks the create event or {user_id}")
        if member["content"].get("membership") != "join":
            raise SystemExit(f"initial sync: {user_id} is not joined in {room_id}'s state")
        count += len(got) + len(state)
    return count


async def _initial(client: Client, server: ServerProcess, args: argparse.Namespace) -> None:
    """(b) initial sync of a user in many rooms, with several timeline limits."""
    print(f"(b) initial sync of a user in {args.rooms} rooms of {args.events} messages")
    user_id, token, rooms = await _fill_rooms(client, args)
    variants: list[tuple[str, Any, int]] = [("default filter", None, DEFAULT_TIMELINE_LIMIT)]
    variants += [
        (f"timeline limit {n}", {"room": {"timeline": {"limit": n}}}, n) for n in args.limits
    ]
    print(
        f"    {'filter':<20}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'first':>8}"
        f"{'size KB':>9}{'events':>8}{'server cpu':>12}{'pg cpu':>8}"
    )
    profile = None
    for label, filter, limit in variants:
        times: list[float] = []
        server.start(profile=args.profile == "initial" and profile is None)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            response, size = await client.call_sized("GET", sync_path(filter=filter), token)
            times.append(time.perf_counter() - t0)
            events = _check_initial(response, user_id, rooms, limit)
        report = server.stop()
        profile = profile or report.get("profile")
        first = times[0]
        times.sort()
        pg = "-" if report["pg_cpu"] is None else _ms(report["pg_cpu"] / args.runs)
        print(
            f"    {label:<20}{_ms(percentile(times, 0.5)):>8}{_ms(percentile(times, 0.99)):>8}"
            f"{_ms(times[-1]):>8}{_ms(first):>8}{size / 1024:>9.0f}{events:>8}"
            f"{_ms(report['cpu'] / args.runs):>12}{pg:>8}"
        )
    print(
        f"    ({args.runs} runs each; cpu in ms per sync; events = timeline + state events "
        "in the response; every response verified)"
    )
    if profile is not None:
        print(profile)


async def _run(args: argparse.Namespace, server: ServerProcess) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        client = Client(http, server.url)
        if args.iterations:
            await _wakeup(client, server, args)
        if args.rooms:
            await _initial(client, server, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="wake-ups to time (0: skip)")
    parser.add_argument("--park-ms", type=int, default=20, help="wait before each send")
    parser.add_argument("--rooms", type=int, default=100, help="rooms of the user (0: skip)")
    parser.add_argument("--events", type=int, default=50, help="messages per room")
    parser.add_argument("--runs", type=int, default=10, help="initial syncs per filter")
    parser.add_argument(
        "--limits",
        type=lambda s: [int(n) for n in s.split(",") if n],
        default=[10, 50],
        help="timeline limits to time besides the default filter (comma-separated)",
    )
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight in setup")
    parser.add_argument("--pool-size", type=int, default=20, help="server's PostgreSQL pool")
    parser.add_argument(
        "--profile", choices=("initial", "wakeup"), help="cProfile the server during one phase"
    )
    args = parser.parse_args()
    if any(n > args.events for n in args.limits):
        parser.error("a timeline limit above --events would include the rooms' creation events")

    with running_server("sync", args.pool_size) as server:
        asyncio.run(_run(args, server))


if __name__ == "__main__":
    main()
