"""Benchmark: our server and a real Synapse side by side, same machine, same
PostgreSQL server, same load over the public client-server API.

Both servers start on fresh databases of one PostgreSQL server (the embedded
one in a temporary directory, or the server named by HOMESERVER_TEST_DSN),
with the same bcrypt rounds and rate limits off. Each gets the same data set
(users, rooms, a room with a long history, a user in many full rooms), then
the measured phases run in alternation, ours then Synapse's, `--rounds`
times, so that machine noise hits both alike:

- registration: new accounts (dummy flow), each token then checked with
  /whoami; room creation: named private rooms, each then read back (its
  name, its creator the only member);
- send: every user sends messages into the shared rooms with `--concurrency`
  requests in flight (events/s, latency p50/p99); every event is then read
  back with /messages (room, sender, body);
- wake-up: B long-polls /sync, A sends; send start -> B's sync returns with
  the event (p50/p99);
- initial sync of a user in `--rooms` rooms of `--events` messages, timeline
  limit 10 (each response checked: every room, its last 10 messages in
  order, its create event and the user's membership);
- /messages: walking a `--history`-message room backwards in pages of 100
  from the end to the start, every message seen exactly once;
- sliding sync (bench/sliding_sync.py): a user in `--ss-rooms` rooms, first
  request, idle incremental request, wake-up, memory per open connection.
  `--sliding-only` runs only these.

Each phase also gets the server's CPU seconds per operation (the server
process and the PostgreSQL backends of its database, from /proc), and the
peak RSS (VmHWM) of each server is read at the end. The table is printed and
written as JSON to bench/results/.

Run: .venv/bin/python bench/compare.py [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import asyncpg
import sliding_sync
from _server import (
    V3,
    Client,
    _postgres_cpu,
    gather_limited,
    percentile,
    running_server,
    server_config,
    sync_path,
)
from _server import register as register_user
from _synapse import running_synapse
from send import _verify
from sync import _check_initial, _fill_rooms, wakeup_loop, wakeup_setup

RESULTS = Path(__file__).resolve().parent / "results"
INITIAL_LIMIT = 10
PAGE = 100


@dataclass
class Target:
    """One server under test, and what the load has set up on it."""

    name: str
    url: str
    pid: int
    database: str
    version: str
    admin: asyncpg.Connection | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # phase -> {"seconds": [...], "ops": n, "elapsed": s, "cpu": s, "pg_cpu": s}
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)


def _process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


async def _backends(admin: asyncpg.Connection, database: str) -> dict[int, float]:
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    cpu = {row["pid"]: _postgres_cpu(row["pid"]) for row in rows}
    return {pid: v for pid, v in cpu.items() if v is not None}


async def _measured(
    target: Target,
    phase: str,
    run: Callable[[], Awaitable[tuple[list[float], int]]],
) -> None:
    """Run one phase on `target`, adding its latencies, operations, wall time
    and CPU (server process; its PostgreSQL backends) to the target's totals."""
    admin = target.admin
    assert admin is not None
    before_pg = await _backends(admin, target.database)
    before = _process_cpu(target.pid)
    t0 = time.perf_counter()
    seconds, ops = await run()
    elapsed = time.perf_counter() - t0
    cpu = _process_cpu(target.pid) - before
    after_pg = await _backends(admin, target.database)
    # Backends opened during the phase started from zero.
    pg_cpu = sum(v - before_pg.get(pid, 0.0) for pid, v in after_pg.items())
    totals = target.phases.setdefault(
        phase, {"seconds": [], "ops": 0, "elapsed": 0.0, "cpu": 0.0, "pg_cpu": 0.0}
    )
    totals["seconds"] += seconds
    totals["ops"] += ops
    totals["elapsed"] += elapsed
    totals["cpu"] += cpu
    totals["pg_cpu"] += pg_cpu


# --- set-up (not measured) ---------------------------------------------------


async def _setup(client: Client, args: argparse.Namespace, target: Target) -> None:
    """The same data set on each server: senders and rooms, the wake-up pair,
    a room with a long history, a user in many full rooms."""
    t0 = time.perf_counter()
    target.data["sliding"] = await sliding_sync.setup(client, args)
    if args.sliding_only:
        return
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
    rooms = []
    for _ in range(args.send_rooms):
        created = await client.call(
            "POST", f"{V3}/createRoom", tokens[0], {"preset": "public_chat"}
        )
        rooms.append(created["room_id"])
    await gather_limited(
        args.concurrency,
        [
            client.call("POST", f"{V3}/rooms/{room}/join", token, {})
            for token in tokens[1:]
            for room in rooms
        ],
    )
    target.data["send"] = {"tokens": tokens, "rooms": rooms, "expected": {}}
    target.data["wakeup"] = await wakeup_setup(client)

    _, h_token = await register_user(client, "history")
    room = (await client.call("POST", f"{V3}/createRoom", h_token, {"preset": "public_chat"}))[
        "room_id"
    ]
    sent = await gather_limited(
        10,
        [
            client.call(
                "PUT",
                f"{V3}/rooms/{room}/send/m.room.message/h{n}",
                h_token,
                {"msgtype": "m.text", "body": f"history {n}"},
            )
            for n in range(args.history)
        ],
    )
    target.data["history"] = {"room": room, "token": h_token, "ids": {s["event_id"] for s in sent}}

    fill = SimpleNamespace(rooms=args.rooms, events=args.events, concurrency=args.concurrency)
    user_id, token, filled = await _fill_rooms(client, fill)
    target.data["initial"] = {"user": user_id, "token": token, "rooms": filled}
    print(f"  {target.name}: set up in {time.perf_counter() - t0:.1f}s", flush=True)


# --- the measured phases -----------------------------------------------------


async def _send(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    data = target.data["send"]
    tokens, rooms, expected = data["tokens"], data["rooms"], data["expected"]

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []

        async def send(user: int, n: int) -> None:
            room = rooms[(user + n) % len(rooms)]
            body = f"message {n} from user {user} in round {rnd}"
            t0 = time.perf_counter()
            resp = await client.call(
                "PUT",
                f"{V3}/rooms/{room}/send/m.room.message/r{rnd}m{n}",
                tokens[user],
                {"msgtype": "m.text", "body": body},
            )
            latencies.append(time.perf_counter() - t0)
            expected[resp["event_id"]] = (room, f"@u{user}:bench.local", body)

        jobs = [send(u, n) for n in range(args.messages) for u in range(args.users)]
        await gather_limited(args.concurrency, jobs)
        return latencies, len(jobs)

    await _measured(target, "send", run)
    await _verify(client, tokens[0], rooms, expected)


async def _wakeup(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    async def run() -> tuple[list[float], int]:
        result = await wakeup_loop(
            client, target.data["wakeup"], args.iterations, args.park_ms, tag=f"r{rnd}-"
        )
        return result["wakeup"], args.iterations

    await _measured(target, "wakeup", run)


async def _initial(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    data = target.data["initial"]

    async def run() -> tuple[list[float], int]:
        times = []
        for i in range(args.runs):
            # A filter unique to each request, so that no server answers from a
            # cache of whole /sync responses (Synapse keeps them for 2 minutes).
            nonce = {
                "room": {"timeline": {"limit": INITIAL_LIMIT}},
                "presence": {"not_types": [f"bench.nonce.{rnd}.{i}"]},
            }
            t0 = time.perf_counter()
            response = await client.call("GET", sync_path(filter=nonce), data["token"])
            times.append(time.perf_counter() - t0)
            _check_initial(response, data["user"], data["rooms"], INITIAL_LIMIT)
        return times, args.runs

    await _measured(target, "initial", run)


async def _messages(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    data = target.data["history"]
    only_messages = urllib.parse.quote('{"types":["m.room.message"]}')

    async def run() -> tuple[list[float], int]:
        times: list[float] = []
        for _ in range(args.walks):
            seen: list[str] = []
            start = ""
            while True:
                t0 = time.perf_counter()
                page = await client.call(
                    "GET",
                    f"{V3}/rooms/{data['room']}/messages?dir=b&limit={PAGE}"
                    f"&filter={only_messages}{start}",
                    data["token"],
                )
                times.append(time.perf_counter() - t0)
                seen += [e["event_id"] for e in page["chunk"]]
                if "end" not in page or not page["chunk"]:
                    break
                start = f"&from={urllib.parse.quote(page['end'])}"
            if len(seen) != len(set(seen)) or set(seen) != data["ids"]:
                raise SystemExit(
                    f"{target.name} /messages: {len(seen)} events read, "
                    f"{len(set(seen))} distinct, {len(data['ids'])} sent"
                )
        return times, len(times)

    await _measured(target, "messages", run)


async def _registration(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    """New accounts with the dummy flow, `--concurrency` at once; each new
    token must answer /whoami with its user."""
    names = [f"reg_r{rnd}_{i}" for i in range(args.registrations)]

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []

        async def register(name: str) -> tuple[str, str]:
            t0 = time.perf_counter()
            body = await client.call(
                "POST",
                f"{V3}/register",
                body={"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}},
            )
            latencies.append(time.perf_counter() - t0)
            return body["user_id"], body["access_token"]

        target.data["registered"] = await gather_limited(
            args.concurrency, [register(n) for n in names]
        )
        return latencies, len(names)

    await _measured(target, "register", run)
    for user_id, token in target.data.pop("registered"):
        whoami = await client.call("GET", f"{V3}/account/whoami", token)
        if whoami["user_id"] != user_id:
            raise SystemExit(f"{target.name}: {token} is {whoami['user_id']}, not {user_id}")


async def _create_rooms(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    """Named private rooms, created 10 at a time by the first sender; each
    must then show its name and its creator joined."""
    token = target.data["send"]["tokens"][0]
    creator = "@u0:bench.local"
    names = [f"room {rnd}-{i}" for i in range(args.creations)]

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []

        async def create(name: str) -> tuple[str, str]:
            t0 = time.perf_counter()
            body = await client.call(
                "POST", f"{V3}/createRoom", token, {"preset": "private_chat", "name": name}
            )
            latencies.append(time.perf_counter() - t0)
            return body["room_id"], name

        target.data["created"] = await gather_limited(10, [create(n) for n in names])
        return latencies, len(names)

    await _measured(target, "create", run)
    for room, name in target.data.pop("created"):
        state = await client.call("GET", f"{V3}/rooms/{room}/state/m.room.name", token)
        members = await client.call("GET", f"{V3}/rooms/{room}/joined_members", token)
        if state.get("name") != name or set(members["joined"]) != {creator}:
            raise SystemExit(f"{target.name}: room {room} is {state}, members {members}")


async def _sliding(client: Client, args: argparse.Namespace, target: Target, rnd: int) -> None:
    """Sliding sync: first requests, idle incremental ones, wake-ups (their
    CPU is the CPU per incremental response), then memory per connection."""
    data, name = target.data["sliding"], target.name
    await _measured(
        target, "ss_first", lambda: sliding_sync.first_requests(client, data, args.runs, name)
    )
    await _measured(
        target, "ss_idle", lambda: sliding_sync.idle_timeouts(client, data, args.runs, name)
    )
    await _measured(
        target,
        "ss_wakeup",
        lambda: sliding_sync.wakeups(client, data, args.iterations, args.park_ms, name),
    )
    kb = await sliding_sync.memory_per_connection(client, data, target.pid, args.ss_connections)
    target.data.setdefault("ss_memory_kb", []).append(kb)


PHASES = (_registration, _create_rooms, _send, _wakeup, _initial, _messages, _sliding)


# --- the figures ------------------------------------------------------------


def _figures(target: Target) -> dict[str, float]:
    """Flat figures of one server: name -> value."""
    out: dict[str, float] = {}
    for phase, t in target.phases.items():
        seconds = sorted(t["seconds"])
        out[f"{phase}_p50_ms"] = percentile(seconds, 0.5) * 1000
        out[f"{phase}_p99_ms"] = percentile(seconds, 0.99) * 1000
        out[f"{phase}_mean_ms"] = statistics.fmean(seconds) * 1000
        out[f"{phase}_cpu_ms_per_op"] = (t["cpu"] + t["pg_cpu"]) / t["ops"] * 1000
        out[f"{phase}_server_cpu_ms_per_op"] = t["cpu"] / t["ops"] * 1000
        out[f"{phase}_pg_cpu_ms_per_op"] = t["pg_cpu"] / t["ops"] * 1000
    send = target.phases.get("send")
    if send is not None:
        out["send_events_per_s"] = send["ops"] / send["elapsed"]
    if target.data.get("ss_memory_kb"):
        out["ss_memory_kb_per_connection"] = statistics.fmean(target.data["ss_memory_kb"])
    out["peak_rss_mb"] = _peak_rss_mb(target.pid)
    return out


# (label, figure key, higher is better)
ROWS = [
    ("registration p50 (ms)", "register_p50_ms", False),
    ("registration CPU (ms)", "register_cpu_ms_per_op", False),
    ("createRoom p50 (ms)", "create_p50_ms", False),
    ("createRoom p99 (ms)", "create_p99_ms", False),
    ("createRoom CPU (ms)", "create_cpu_ms_per_op", False),
    ("send throughput (events/s)", "send_events_per_s", True),
    ("send latency p50 (ms)", "send_p50_ms", False),
    ("send latency p99 (ms)", "send_p99_ms", False),
    ("send CPU per event (ms)", "send_cpu_ms_per_op", False),
    ("sync wake-up p50 (ms)", "wakeup_p50_ms", False),
    ("sync wake-up p99 (ms)", "wakeup_p99_ms", False),
    ("wake-up CPU per message (ms)", "wakeup_cpu_ms_per_op", False),
    ("initial sync p50 (ms)", "initial_p50_ms", False),
    ("initial sync p99 (ms)", "initial_p99_ms", False),
    ("initial sync CPU (ms)", "initial_cpu_ms_per_op", False),
    ("/messages page p50 (ms)", "messages_p50_ms", False),
    ("/messages page p99 (ms)", "messages_p99_ms", False),
    ("/messages CPU per page (ms)", "messages_cpu_ms_per_op", False),
    ("peak RSS (MB)", "peak_rss_mb", False),
    ("sliding sync first req p50 (ms)", "ss_first_p50_ms", False),
    ("sliding sync first req CPU (ms)", "ss_first_cpu_ms_per_op", False),
    ("sliding sync idle poll p50 (ms)", "ss_idle_p50_ms", False),
    ("sliding sync wake-up p50 (ms)", "ss_wakeup_p50_ms", False),
    ("sliding sync wake-up p99 (ms)", "ss_wakeup_p99_ms", False),
    ("sliding sync CPU/incremental (ms)", "ss_wakeup_cpu_ms_per_op", False),
    ("sliding sync KB per connection", "ss_memory_kb_per_connection", False),
]


def _advantage(ours: float, synapse: float, higher_better: bool) -> float | None:
    """How many times better ours is (above 1: ours is better)."""
    if higher_better:
        return ours / synapse if synapse else None
    return synapse / ours if ours else None


def _table(ours: dict[str, float], synapse: dict[str, float]) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    lines = [f"{'':<32}{'ours':>10}{'Synapse':>10}{'ours better by':>16}"]
    for label, key, higher in ROWS:
        if key in ours and not synapse:
            # --ours-only: our figures alone.
            rows.append({"figure": label, "key": key, "ours": round(ours[key], 3)})
            lines.append(f"{label:<32}{ours[key]:>10.1f}{'-':>10}{'-':>16}")
            continue
        if key not in ours or key not in synapse:
            continue
        adv = _advantage(ours[key], synapse[key], higher)
        rows.append(
            {
                "figure": label,
                "key": key,
                "ours": round(ours[key], 3),
                "synapse": round(synapse[key], 3),
                "higher_is_better": higher,
                "ours_better_by": None if adv is None else round(adv, 2),
            }
        )
        shown = "-" if adv is None else f"{adv:.2f}x"
        lines.append(f"{label:<32}{ours[key]:>10.1f}{synapse[key]:>10.1f}{shown:>16}")
    return "\n".join(lines), rows


# --- the run -----------------------------------------------------------------


@contextmanager
def _postgres() -> Iterator[str]:
    """The admin DSN of the PostgreSQL server both use: HOMESERVER_TEST_DSN's,
    or an embedded one in a temporary directory."""
    dsn = os.environ.get("HOMESERVER_TEST_DSN")
    if dsn:
        yield dsn
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="bench-compare-pg-") as pgdata:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


async def _run(args: argparse.Namespace, admin_dsn: str, targets: list[Target]) -> None:
    admin = await asyncpg.connect(admin_dsn)
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=300)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            clients = {t.name: Client(http, t.url) for t in targets}
            print("setting up the same data on both servers", flush=True)
            for target in targets:
                target.admin = admin
            # Side by side (not measured): each server mostly keeps one CPU busy.
            await asyncio.gather(*(_setup(clients[t.name], args, t) for t in targets))
            for rnd in range(args.rounds):
                for target in targets:
                    t0 = time.perf_counter()
                    for phase in (_sliding,) if args.sliding_only else PHASES:
                        await phase(clients[target.name], args, target, rnd)
                    print(
                        f"  round {rnd + 1}/{args.rounds}, {target.name}: "
                        f"{time.perf_counter() - t0:.1f}s, all results verified",
                        flush=True,
                    )
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternations ours/Synapse")
    parser.add_argument("--registrations", type=int, default=50, help="accounts per round")
    parser.add_argument("--creations", type=int, default=20, help="rooms created per round")
    parser.add_argument("--users", type=int, default=50, help="senders")
    parser.add_argument("--send-rooms", type=int, default=5, help="rooms the senders share")
    parser.add_argument("--messages", type=int, default=10, help="messages per sender per round")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--iterations", type=int, default=50, help="wake-ups per round")
    parser.add_argument("--park-ms", type=int, default=20, help="long poll parked before a send")
    parser.add_argument("--rooms", type=int, default=100, help="rooms of the initial-sync user")
    parser.add_argument("--events", type=int, default=50, help="messages per such room")
    parser.add_argument("--runs", type=int, default=5, help="initial syncs per round")
    parser.add_argument("--history", type=int, default=1000, help="messages in the long room")
    parser.add_argument("--walks", type=int, default=3, help="full /messages walks per round")
    parser.add_argument("--pool-size", type=int, default=20, help="our PostgreSQL pool")
    parser.add_argument("--ss-rooms", type=int, default=1000, help="rooms of the sliding user")
    parser.add_argument("--ss-members", type=int, default=20, help="members of each such room")
    parser.add_argument("--ss-messages", type=int, default=20, help="messages in each such room")
    parser.add_argument("--ss-connections", type=int, default=50, help="for memory/connection")
    parser.add_argument(
        "--ss-concurrency", type=int, default=16, help="requests in flight building its rooms"
    )
    parser.add_argument("--sliding-only", action="store_true", help="only the sliding sync phases")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument(
        "--ours-only", action="store_true", help="our server alone (no Synapse needed)"
    )
    args = parser.parse_args()
    if args.quick:
        args.users, args.messages, args.iterations, args.rooms = 10, 3, 5, 5
        args.registrations, args.creations = 5, 3
        args.events, args.runs, args.history, args.walks = 20, 2, 250, 1
        args.ss_rooms, args.ss_members, args.ss_messages, args.ss_connections = 30, 5, 5, 10

    bcrypt_rounds = server_config("", None, 1)["bcrypt_rounds"]
    started = time.perf_counter()
    with _postgres() as admin_dsn, ExitStack() as stack:
        # Our running_server creates its database on HOMESERVER_TEST_DSN's server.
        os.environ["HOMESERVER_TEST_DSN"] = admin_dsn
        ours_process = stack.enter_context(running_server("compare", args.pool_size))
        targets = [
            Target("ours", ours_process.url, ours_process.pid, ours_process.database, "this tree")
        ]
        if not args.ours_only:
            synapse = stack.enter_context(running_synapse(admin_dsn, bcrypt_rounds))
            targets.append(
                Target("Synapse", synapse.url, synapse.pid, synapse.database, synapse.version)
            )
        asyncio.run(_run(args, admin_dsn, targets))
        figures = {t.name: _figures(t) for t in targets}

    text, rows = _table(figures["ours"], figures.get("Synapse", {}))
    synapse_version = targets[1].version if len(targets) > 1 else None
    print()
    against = f"Synapse {synapse_version}" if synapse_version else "ours only"
    print(f"{against}; {os.cpu_count()} CPUs; {args.rounds} rounds")
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"compare-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "synapse_version": synapse_version,
                "settings": {k: v for k, v in vars(args).items()},
                "bcrypt_rounds": bcrypt_rounds,
                "table": rows,
                "figures": figures,
                "counts": {t.name: {p: v["ops"] for p, v in t.phases.items()} for t in targets},
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
