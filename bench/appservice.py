"""Benchmark: a bridge (application service) on our server and on Synapse.

The bridge's ghost users (`@ghost_N`, registered with
`m.login.application_service`) each create some of `--rooms` public rooms,
then send `--rate` messages per second for `--duration` seconds through
`?user_id=` with the as_token, spread over the rooms. The bridge's own HTTP
server (in this process) receives the transactions the homeserver pushes to
it and notes when each message arrived. Figures, per server:

- sent events/s actually reached (requests are paced; at most
  `--concurrency` in flight);
- delivery latency p50/p99/max, from the commit to the appservice's HTTP
  handler: the commit is taken as the moment the send's response reached the
  bridge (the server answers once the event is committed), so a push that
  beats the response counts as 0; and end to end, from the start of the
  send request to the handler (what a bridge's user waits);
- CPU per event: the server process plus the PostgreSQL backends of its
  database, from the first send until the last event reached the bridge.

Every event sent must reach the bridge exactly once, or the run fails.
Both servers run on one PostgreSQL server (as compare.py), ours first.

Run: .venv/bin/python bench/appservice.py [--rate 1000] [--duration 10]
     [--rooms 100] [--ghosts 20] [--quick] [--ours-only]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import tempfile
import time
import urllib.parse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from _server import V3, percentile, running_server, server_config
from _synapse import running_synapse
from aiohttp import web
from compare import _backends, _postgres, _process_cpu

RESULTS = Path(__file__).resolve().parent / "results"
SERVER_NAME = "bench.local"
AS_TOKEN = "bench-as-token"
HS_TOKEN = "bench-hs-token"


class Bridge:
    """The appservice's receiving side: notes when each event arrived."""

    def __init__(self) -> None:
        # event id -> time.perf_counter() when the handler got it.
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.transactions = 0
        self._seen_txns: set[str] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self._transaction)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _transaction(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        if request.headers.get("Authorization") != f"Bearer {HS_TOKEN}":
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "token"}, status=403)
        body = await request.json()
        txn = request.match_info["txn"]
        if txn in self._seen_txns:
            return web.json_response({})
        self._seen_txns.add(txn)
        self.transactions += 1
        for event in body.get("events", []):
            if event.get("type") != "m.room.message":
                continue
            if event["event_id"] in self.arrived:
                self.duplicates += 1
            self.arrived[event["event_id"]] = now
        self.changed.set()
        return web.json_response({})


def registration(path: Path, port: int) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "id": "bench",
                "url": f"http://127.0.0.1:{port}",
                "as_token": AS_TOKEN,
                "hs_token": HS_TOKEN,
                "sender_localpart": "benchbot",
                "namespaces": {
                    "users": [{"exclusive": True, "regex": f"@ghost_.*:{SERVER_NAME}"}],
                    "aliases": [],
                    "rooms": [],
                },
                "rate_limited": False,
            }
        )
    )
    return path


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any
) -> tuple[int, dict[str, Any]]:
    async with http.request(
        method, url, json=body, headers={"Authorization": f"Bearer {AS_TOKEN}"}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def _as(url: str, user_id: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}user_id={urllib.parse.quote(user_id)}"


async def setup(http: aiohttp.ClientSession, base: str, args: Any) -> list[tuple[str, str]]:
    """Register the ghosts and let them create the rooms: [(room, its ghost)]."""
    ghosts = [f"@ghost_{i}:{SERVER_NAME}" for i in range(args.ghosts)]
    for i in range(args.ghosts):
        status, body = await _call(
            http,
            "POST",
            f"{base}{V3}/register",
            {"type": "m.login.application_service", "username": f"ghost_{i}"},
        )
        assert status == 200, body
    rooms = []
    sem = asyncio.Semaphore(10)

    async def create(index: int) -> None:
        ghost = ghosts[index % len(ghosts)]
        async with sem:
            status, body = await _call(
                http,
                "POST",
                _as(f"{base}{V3}/createRoom", ghost),
                {"preset": "public_chat", "name": f"bridged {index}"},
            )
        assert status == 200, body
        rooms.append((body["room_id"], ghost))

    await asyncio.gather(*(create(i) for i in range(args.rooms)))
    return rooms


async def load(
    http: aiohttp.ClientSession, base: str, rooms: list[tuple[str, str]], args: Any, run: str
) -> tuple[dict[str, tuple[float, float]], float]:
    """Send rate x duration messages, paced: {event id: (perf_counter at the
    request's start, at its response)} and the send phase's seconds."""
    total = args.rate * args.duration
    sem = asyncio.Semaphore(args.concurrency)
    sent: dict[str, tuple[float, float]] = {}
    started = time.perf_counter()

    async def one(k: int) -> None:
        delay = started + k / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        room_id, ghost = rooms[k % len(rooms)]
        async with sem:
            begun = time.perf_counter()
            status, body = await _call(
                http,
                "PUT",
                _as(f"{base}{V3}/rooms/{room_id}/send/m.room.message/{run}-{k}", ghost),
                {"msgtype": "m.text", "body": f"bridged message {k}"},
            )
        assert status == 200, body
        sent[body["event_id"]] = (begun, time.perf_counter())

    await asyncio.gather(*(one(k) for k in range(total)))
    return sent, time.perf_counter() - started


async def measure(
    name: str, base: str, pid: int, database: str, admin_dsn: str, bridge: Bridge, args: Any
) -> dict[str, Any]:
    admin = await asyncpg.connect(admin_dsn)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            rooms = await setup(http, base, args)
            cpu_before = _process_cpu(pid)
            pg_before = await _backends(admin, database)
            sent, send_seconds = await load(http, base, rooms, args, name)
            wanted = set(sent)
            async with asyncio.timeout(args.drain_timeout):
                while not wanted <= bridge.arrived.keys():
                    bridge.changed.clear()
                    await bridge.changed.wait()
            cpu = _process_cpu(pid) - cpu_before
            pg_after = await _backends(admin, database)
            pg_cpu = sum(v - pg_before.get(p, 0.0) for p, v in pg_after.items())
    finally:
        await admin.close()
    if bridge.duplicates:
        raise SystemExit(f"{name}: {bridge.duplicates} events reached the bridge twice")
    after_commit = sorted(
        max(0.0, bridge.arrived[e] - answered) * 1000 for e, (_, answered) in sent.items()
    )
    end_to_end = sorted((bridge.arrived[e] - begun) * 1000 for e, (begun, _) in sent.items())
    return {
        "events": len(sent),
        "sent_per_s": len(sent) / send_seconds,
        "transactions": bridge.transactions,
        "latency_ms_p50": percentile(after_commit, 0.50),
        "latency_ms_p99": percentile(after_commit, 0.99),
        "latency_ms_max": after_commit[-1],
        "end_to_end_ms_p50": percentile(end_to_end, 0.50),
        "end_to_end_ms_p99": percentile(end_to_end, 0.99),
        "server_cpu_ms_per_event": cpu / len(sent) * 1000,
        "pg_cpu_ms_per_event": pg_cpu / len(sent) * 1000,
        "cpu_ms_per_event": (cpu + pg_cpu) / len(sent) * 1000,
    }


ROWS = (
    ("events sent", "events", "{:.0f}"),
    ("sent events/s", "sent_per_s", "{:.0f}"),
    ("transactions", "transactions", "{:.0f}"),
    ("commit -> bridge p50 (ms)", "latency_ms_p50", "{:.1f}"),
    ("commit -> bridge p99 (ms)", "latency_ms_p99", "{:.1f}"),
    ("commit -> bridge max (ms)", "latency_ms_max", "{:.1f}"),
    ("send start -> bridge p50 (ms)", "end_to_end_ms_p50", "{:.1f}"),
    ("send start -> bridge p99 (ms)", "end_to_end_ms_p99", "{:.1f}"),
    ("CPU per event, server (ms)", "server_cpu_ms_per_event", "{:.2f}"),
    ("CPU per event, PostgreSQL (ms)", "pg_cpu_ms_per_event", "{:.2f}"),
    ("CPU per event, total (ms)", "cpu_ms_per_event", "{:.2f}"),
)


def table(figures: dict[str, dict[str, Any]]) -> str:
    names = list(figures)
    lines = [f"{'':32}" + "".join(f"{n:>14}" for n in names)]
    for label, key, fmt in ROWS:
        lines.append(f"{label:32}" + "".join(f"{fmt.format(figures[n][key]):>14}" for n in names))
    return "\n".join(lines)


async def _bridges(count: int) -> list[Bridge]:
    bridges = [Bridge() for _ in range(count)]
    for bridge in bridges:
        await bridge.start()
    return bridges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="messages per second to send")
    parser.add_argument("--duration", type=int, default=10, help="seconds of sending")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--ghosts", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=50, help="sends in flight at most")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--pool-size", type=int, default=20, help="our PostgreSQL pool")
    parser.add_argument("--ours-only", action="store_true", help="without Synapse")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.duration, args.rooms, args.ghosts = 100, 3, 10, 5

    bcrypt_rounds = server_config("", None, 1)["bcrypt_rounds"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    bridges = loop.run_until_complete(_bridges(1 if args.ours_only else 2))
    figures: dict[str, dict[str, Any]] = {}
    versions: dict[str, str] = {"ours": "this tree"}
    try:
        with (
            _postgres() as admin_dsn,
            ExitStack() as stack,
            tempfile.TemporaryDirectory(prefix="bench-as-") as tmp,
        ):
            os.environ["HOMESERVER_TEST_DSN"] = admin_dsn
            ours_file = registration(Path(tmp) / "ours.yaml", bridges[0].port)
            ours = stack.enter_context(
                running_server(
                    "appservice", args.pool_size, {"app_service_config_files": [str(ours_file)]}
                )
            )
            figures["ours"] = loop.run_until_complete(
                measure("ours", ours.url, ours.pid, ours.database, admin_dsn, bridges[0], args)
            )
            if not args.ours_only:
                synapse_file = registration(Path(tmp) / "synapse.yaml", bridges[1].port)
                synapse = stack.enter_context(
                    running_synapse(
                        admin_dsn,
                        bcrypt_rounds,
                        {"app_service_config_files": [str(synapse_file)]},
                    )
                )
                versions["Synapse"] = synapse.version
                figures["Synapse"] = loop.run_until_complete(
                    measure(
                        "Synapse",
                        synapse.url,
                        synapse.pid,
                        synapse.database,
                        admin_dsn,
                        bridges[1],
                        args,
                    )
                )
    finally:
        for bridge in bridges:
            loop.run_until_complete(bridge.stop())
        loop.close()
    print()
    print(
        f"{os.cpu_count()} CPUs; {args.rate} events/s for {args.duration} s into {args.rooms} rooms"
    )
    print(table(figures))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"appservice-{stamp}.json"
    out.write_text(
        json.dumps(
            {"when": stamp, "versions": versions, "settings": vars(args), "figures": figures},
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
