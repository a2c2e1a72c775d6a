"""Benchmark: a big account and many connections (issue 24, item 2).

(a) Big account: user U joined to `--sizes` rooms (grown one size after the
other: 10, then 100, ...), each room made by U with createRoom. At each size:

- initial /sync (the server's default filter), timed `--runs` times;
- incremental /sync with one new message: U's token, then another member
  sends one message into one of the rooms (a different one each run), then
  /sync from the token with timeout 0, checked to hold exactly that room with
  that event; only the /sync is timed and its server CPU measured;
- the first sliding-sync request of a new connection (one list, range 0-19,
  timeline_limit 1), checked to hold 20 rooms and the whole count.

The goal printed: incremental /sync at the largest size within 2x of the
smallest.

(b) Many connections: `--users` users in one room. Memory: `--polls` long
polls (spread over the users, each from its user's latest token) parked at
once; the server's resident memory grown, per parked poll. Fan-out: one long
poll per user parked, then one message sent into the room; the time from
the send starting to each poll returning with the event (checked), p50/p99
over `--fanout-rounds` rounds. Goals: 10,000 polls in under 300 MB, p99
under 250 ms.

The server runs in a child process on a fresh database (bench/_server.py).
`--profile initial|incremental|sliding|fanout` runs cProfile in the server
during that phase at the largest size and prints the top functions;
`--py-spy FILE` samples the server with py-spy during the last fan-out round.

Run: .venv/bin/python bench/big_account.py [--sizes 10,100,1000,3000]
     [--runs 10] [--users 1000] [--polls 10000] [--fanout-rounds 3]
     [--profile PHASE] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from _server import (
    V3,
    Client,
    ServerProcess,
    cpu_seconds,
    gather_limited,
    percentile,
    register,
    running_server,
    sync_path,
)

SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


def _rss_mb(pid: int | None) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def _register(client: Client, name: str) -> dict[str, str]:
    user_id, token = await register(client, name)
    return {"user_id": user_id, "token": token}


async def _grow(
    client: Client,
    owner: dict[str, str],
    other: dict[str, str],
    rooms: list[str],
    size: int,
    concurrency: int,
) -> None:
    """Rooms made by `owner` (and joined by `other`) until there are `size`."""

    async def make(n: int) -> str:
        created = await client.call(
            "POST",
            f"{V3}/createRoom",
            owner["token"],
            {"preset": "public_chat", "name": f"room {n}", "creation_content": {"bench.n": n}},
        )
        room_id = str(created["room_id"])
        await client.call("POST", f"{V3}/rooms/{room_id}/join", other["token"], {})
        return room_id

    rooms += await gather_limited(concurrency, [make(n) for n in range(len(rooms), size)])


def _row(label: str, times: list[float], cpu: float, pg: float | None, n: int) -> dict[str, Any]:
    times = sorted(times)
    row = {
        "phase": label,
        "p50_ms": percentile(times, 0.5) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "cpu_ms": cpu / n * 1000,
        "pg_cpu_ms": None if pg is None else pg / n * 1000,
    }
    pg_text = "-" if pg is None else _ms(pg / n)
    print(
        f"    {label:<24}{_ms(row['p50_ms'] / 1000):>9}{_ms(row['p99_ms'] / 1000):>9}"
        f"{_ms(cpu / n):>11}{pg_text:>9}"
    )
    return row


async def _phase(
    server: ServerProcess, label: str, runs: int, profile: bool, make_job: Any, check: Any
) -> tuple[dict[str, Any], str | None]:
    """Time `runs` requests (each `make_job(i)`'s awaitable, after whatever
    the job does first); the server's CPU is measured over the whole phase,
    so it includes that preparation (the incremental phase's sends)."""
    times = []
    server.start(profile=profile)
    for i in range(runs):
        job = await make_job(i)
        t0 = time.perf_counter()
        result = await job
        times.append(time.perf_counter() - t0)
        check(result, i)
    report = server.stop()
    return _row(label, times, report["cpu"], report["pg_cpu"], runs), report.get("profile")


class _BigAccount:
    """User U (`owner`) and the member who sends (`other`) in U's rooms."""

    def __init__(self, client: Client, server: ServerProcess, args: argparse.Namespace) -> None:
        self.client, self.server, self.args = client, server, args
        self.rooms: list[str] = []
        self.owner: dict[str, str] = {}
        self.other: dict[str, str] = {}

    async def run(self) -> list[dict[str, Any]]:
        self.owner = await _register(self.client, "big")
        self.other = await _register(self.client, "big_other")
        results = []
        for size in self.args.sizes:
            t0 = time.perf_counter()
            await _grow(
                self.client, self.owner, self.other, self.rooms, size, self.args.concurrency
            )
            print(f"(a) user in {size} rooms (made in {time.perf_counter() - t0:.1f}s)")
            print(f"    {'phase':<24}{'p50 ms':>9}{'p99 ms':>9}{'server cpu':>11}{'pg cpu':>9}")
            last = size == self.args.sizes[-1]
            for phase, name in (
                (self.initial, "initial"),
                (self.incremental, "incremental"),
                (self.sliding, "sliding"),
            ):
                row, profile = await phase(last and self.args.profile == name)
                results.append({"rooms": size, **row})
                if profile:
                    print(profile)
        incs = [r for r in results if r["phase"] == "incremental /sync"]
        if len(incs) > 1:
            ratio = incs[-1]["p50_ms"] / incs[0]["p50_ms"]
            cpu_ratio = incs[-1]["cpu_ms"] / incs[0]["cpu_ms"]
            verdict = "met" if ratio <= 2 else "NOT met"
            print(
                f"    goal: incremental /sync at {incs[-1]['rooms']} rooms / at "
                f"{incs[0]['rooms']} rooms: latency {ratio:.2f}x, server cpu (send + sync) "
                f"{cpu_ratio:.2f}x (<= 2x: {verdict})"
            )
        return results

    async def initial(self, profile: bool) -> tuple[dict[str, Any], str | None]:
        size = len(self.rooms)

        async def job(_: int) -> Any:
            return self.client.call("GET", sync_path(), self.owner["token"])

        def check(response: dict[str, Any], _: int) -> None:
            joined = response.get("rooms", {}).get("join", {})
            if len(joined) != size:
                raise SystemExit(f"initial sync: {len(joined)} rooms, want {size}")

        return await _phase(self.server, "initial /sync", self.args.runs, profile, job, check)

    async def incremental(self, profile: bool) -> tuple[dict[str, Any], str | None]:
        """One message by `other`, then U's /sync from its last token (timed)."""
        size = len(self.rooms)
        first = await self.client.call("GET", sync_path(), self.owner["token"])
        since = {"token": first["next_batch"]}
        sent: dict[int, tuple[str, str]] = {}

        async def job(i: int) -> Any:
            room_id = self.rooms[(i * 7919) % size]
            event = await self.client.call(
                "PUT",
                f"{V3}/rooms/{room_id}/send/m.room.message/inc{size}.{i}",
                self.other["token"],
                {"msgtype": "m.text", "body": f"one new message {i}"},
            )
            sent[i] = (room_id, event["event_id"])
            return self.client.call("GET", sync_path(since["token"]), self.owner["token"])

        def check(response: dict[str, Any], i: int) -> None:
            room_id, event_id = sent[i]
            joined = response.get("rooms", {}).get("join", {})
            events = joined.get(room_id, {}).get("timeline", {}).get("events", [])
            if list(joined) != [room_id] or [e["event_id"] for e in events] != [event_id]:
                raise SystemExit(f"incremental sync: rooms {list(joined)[:5]}, want {room_id}")
            since["token"] = response["next_batch"]

        return await _phase(self.server, "incremental /sync", self.args.runs, profile, job, check)

    async def sliding(self, profile: bool) -> tuple[dict[str, Any], str | None]:
        """The first request of a new sliding-sync connection."""
        size = len(self.rooms)
        required = [["m.room.create", ""], ["m.room.name", ""], ["m.room.member", "$ME"]]

        async def job(i: int) -> Any:
            lists = {"all": {"ranges": [[0, 19]], "timeline_limit": 1, "required_state": required}}
            body = {"conn_id": f"first{size}.{i}", "lists": lists}
            return self.client.call("POST", f"{SLIDING}?timeout=0", self.owner["token"], body)

        def check(response: dict[str, Any], _: int) -> None:
            count = response.get("lists", {}).get("all", {}).get("count")
            got = len(response.get("rooms", {}))
            if count != size or got != min(size, 20):
                raise SystemExit(f"sliding sync: count {count}, {got} rooms")

        return await _phase(self.server, "first sliding sync", self.args.runs, profile, job, check)


async def _fanout(
    client: Client,
    server: ServerProcess,
    users: list[dict[str, str]],
    since: list[str],
    sender: dict[str, str],
    room_id: str,
    round_: int,
    profile: bool,
    spy_to: str | None,
) -> tuple[list[float], dict[str, Any]]:
    """One long poll per user parked, then one message: the seconds from the
    send starting to each poll returning with it, and the server's report
    with the responses the polls got meanwhile ("responses") and this
    client's own CPU seconds ("client_cpu": when it nears the elapsed time,
    the client, not the server, is what is measured)."""
    done: list[float] = []
    body = f"fan-out {round_}"
    started: list[float] = []
    returns = [0]

    async def poll(i: int) -> None:
        while True:
            response = await client.call("GET", sync_path(since[i], 60_000), users[i]["token"])
            since[i] = response["next_batch"]
            returns[0] += 1
            joined = response.get("rooms", {}).get("join", {})
            events = joined.get(room_id, {}).get("timeline", {}).get("events", [])
            if any(e.get("content", {}).get("body") == body for e in events):
                done.append(time.perf_counter() - started[0])
                return

    waiting = [asyncio.ensure_future(poll(i)) for i in range(len(users))]
    await _settle(server.pid, 0.3, 0.2, 3)
    # Polls coming back for other news (the users' presence going online as
    # they poll again) are not the fan-out: wait until they are quiet.
    seen = -1
    while seen != returns[0]:
        seen = returns[0]
        await asyncio.sleep(1.0)
    spy = await _py_spy(server.pid, spy_to) if spy_to else None
    server.start(profile=profile)
    before = returns[0]
    client_cpu = cpu_seconds()
    started.append(time.perf_counter())
    await client.call(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/fan{round_}",
        sender["token"],
        {"msgtype": "m.text", "body": body},
    )
    await asyncio.gather(*waiting)
    client_cpu = cpu_seconds() - client_cpu
    report = server.stop()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await spy.wait()
    return done, report | {"responses": returns[0] - before, "client_cpu": client_cpu}


async def _py_spy(pid: int | None, out: str) -> asyncio.subprocess.Process:
    """py-spy sampling the server into `out` (collapsed stacks) until SIGINT."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "-p",
        str(pid),
        "-f",
        "raw",
        "-r",
        "250",
        "--nonblocking",
        "-o",
        out,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # attached
    return proc


async def _settle(pid: int | None, every_s: float, slack_mb: float, times: int) -> None:
    """Until the server's memory stops growing: the polls sent have arrived and parked."""
    peak, stable = _rss_mb(pid), 0
    while stable < times:
        await asyncio.sleep(every_s)
        now = _rss_mb(pid)
        stable = stable + 1 if now <= peak + slack_mb else 0
        peak = max(peak, now)


async def many_connections(
    client: Client, server: ServerProcess, args: argparse.Namespace
) -> dict[str, Any]:
    t0 = time.perf_counter()
    users = await gather_limited(
        args.concurrency, [_register(client, f"poll{i}") for i in range(args.users)]
    )
    room_id = (
        await client.call("POST", f"{V3}/createRoom", users[0]["token"], {"preset": "public_chat"})
    )["room_id"]
    for u in users[1:]:
        await client.call("POST", f"{V3}/rooms/{room_id}/join", u["token"], {})
    tokens = await gather_limited(
        args.concurrency,
        [client.call("GET", sync_path(), u["token"]) for u in users],
    )
    since = [t["next_batch"] for t in tokens]
    print(f"(b) {args.users} users in one room (made in {time.perf_counter() - t0:.1f}s)")
    result: dict[str, Any] = {"users": args.users}
    sender = await _register(client, "poll_sender")
    await client.call("POST", f"{V3}/rooms/{room_id}/join", sender["token"], {})
    # Take the tokens past the sender's join and past the users' presence:
    # users who went offline during the setup come online with the first
    # round, and the second takes every token past those changes, so that
    # the polls below park instead of returning with presence news.
    for _ in range(2):
        since = [
            r["next_batch"]
            for r in await gather_limited(
                args.concurrency,
                [
                    client.call("GET", sync_path(s), u["token"])
                    for s, u in zip(since, users, strict=True)
                ],
            )
        ]

    if args.polls:
        before = _rss_mb(server.pid)
        polls = [
            asyncio.ensure_future(
                client.call(
                    "GET",
                    sync_path(since[i % len(users)], 60_000),
                    users[i % len(users)]["token"],
                )
            )
            for i in range(args.polls)
        ]
        await _settle(server.pid, 0.5, 0.5, 4)
        during = _rss_mb(server.pid)
        grown = during - before
        per_kb = grown * 1024 / args.polls
        verdict = "met" if grown < 300 * args.polls / 10_000 else "NOT met"
        print(
            f"    {args.polls} parked long polls: server RSS {before:.0f} -> {during:.0f} MB, "
            f"{per_kb:.1f} KB per poll (10,000 in under 300 MB: {verdict})"
        )
        result |= {
            "polls": args.polls,
            "rss_before_mb": before,
            "rss_parked_mb": during,
            "kb_per_poll": per_kb,
        }
        # They return on their timeout, each with nothing new: a wake-up of
        # 10,000 at once is not what this measures.
        released = await asyncio.gather(*polls)
        for i, r in enumerate(released[: len(users)]):
            since[i] = r["next_batch"]

    latencies: list[float] = []
    report_profile = None
    cpu = pg_cpu = client_cpu = 0.0
    responses = 0
    for round_ in range(args.fanout_rounds):
        last = round_ == args.fanout_rounds - 1
        done, report = await _fanout(
            client,
            server,
            users,
            since,
            sender,
            room_id,
            round_,
            last and args.profile == "fanout",
            args.py_spy if last else None,
        )
        cpu += report["cpu"]
        pg_cpu += report["pg_cpu"] or 0.0
        client_cpu += report["client_cpu"]
        responses += report["responses"]
        report_profile = report.get("profile") or report_profile
        latencies += done
    if not latencies:
        return result
    latencies.sort()
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    verdict = "met" if p99 < 0.25 else "NOT met"
    print(
        f"    fan-out of one message to {len(users)} parked polls ({args.fanout_rounds} rounds): "
        f"p50 {_ms(p50)} ms, p99 {_ms(p99)} ms, max {_ms(latencies[-1])} ms, "
        f"server cpu {_ms(cpu / args.fanout_rounds)} ms per message (p99 < 250 ms: {verdict})"
    )
    rounds = args.fanout_rounds
    print(
        f"    per message: {responses / rounds:.0f} responses to the polls, PostgreSQL cpu "
        f"{_ms(pg_cpu / rounds)} ms, this client's cpu {_ms(client_cpu / rounds)} ms"
    )
    if report_profile:
        print(report_profile)
    return result | {
        "fanout_p50_ms": p50 * 1000,
        "fanout_p99_ms": p99 * 1000,
        "fanout_cpu_ms": cpu / args.fanout_rounds * 1000,
        "fanout_pg_cpu_ms": pg_cpu / args.fanout_rounds * 1000,
        "fanout_client_cpu_ms": client_cpu / args.fanout_rounds * 1000,
        "fanout_responses": responses / args.fanout_rounds,
    }


async def _run(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        client = Client(http, server.url)
        if args.sizes:
            out["big_account"] = await _BigAccount(client, server, args).run()
        if args.users:
            out["connections"] = await many_connections(client, server, args)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sizes = lambda s: [int(n) for n in s.split(",") if n]  # noqa: E731
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=[10, 100, 1000, 3000],
        help="rooms of the user, ascending (empty: skip (a))",
    )
    parser.add_argument("--runs", type=int, default=10, help="requests timed per phase")
    parser.add_argument("--users", type=int, default=1000, help="users polling (0: skip (b))")
    parser.add_argument("--polls", type=int, default=10_000, help="polls parked at once")
    parser.add_argument("--fanout-rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight in setup")
    parser.add_argument("--pool-size", type=int, default=20, help="server's PostgreSQL pool")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--profile", choices=("initial", "incremental", "sliding", "fanout"))
    parser.add_argument(
        "--py-spy", help="sample the server with py-spy in the last fan-out round, into this file"
    )
    args = parser.parse_args()
    # Both ends hold one socket per poll.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with running_server("big_account", args.pool_size) as server:
        figures = asyncio.run(_run(args, server))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
