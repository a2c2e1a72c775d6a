"""Benchmark: how each cost grows with size, our server and Synapse side by
side (issue 24, item 1; `make bench-scale`).

Both servers run on fresh databases of one PostgreSQL server (the embedded
one in a temporary directory, or HOMESERVER_TEST_DSN's), as for `compare.py`.
Each phase runs on ours, then on Synapse, each within a time budget of its
own (`--budgets`): a server that does not reach a size in time keeps its
figures at the largest size it reached, marked as stopped by the budget.

- room (`scale_room.py`): a room growing to `--members` members, joins
  through the client API: CPU and latency of one join and one message, rows
  and WAL written per join, state storage;
- account (`scale_account.py`): a user in `--rooms` rooms: initial /sync,
  incremental /sync with one new message, first sliding-sync request;
- connections (`scale_connections.py`): `--connections` open long polls:
  memory per connection, wake-up p50/p99 of a fan-out to 1,000 of them;
- federation (`scale_federation.py`): `--federation-pdus` PDUs from a
  scripted remote server into each of `--federation-rooms` room counts:
  PDUs/s, CPU and database bytes per event.

CPU is the server process plus its PostgreSQL backends (from /proc). Every
phase checks what it measures and fails loudly otherwise. The results go to
bench/results/scale-<UTC time>.json with a PNG per phase next to it; the
table and the issue's goals (ratio, target, pass/fail) are printed.

Run: .venv/bin/python bench/scale.py [--quick] [--only room,account] [--ours-only]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import scale_account
import scale_common
import scale_connections
import scale_federation
import scale_report
import scale_room
from _server import Client, _database_url, running_server, server_config
from _synapse import running_synapse
from compare import _peak_rss_mb, _postgres
from scale_common import Budget, CheckFailed, PhaseResult, Target

RESULTS = Path(__file__).resolve().parent / "results"
# Connections first: its memory figures are those of a server fresh from
# start-up, not of one grown by the other phases' caches.
PHASES = ("connections", "room", "account", "federation")
# Seconds per server per phase: with the default sizes the whole run,
# both servers' start-up and the plots included, stays under 30 minutes.
DEFAULT_BUDGETS = {"connections": 140, "room": 280, "account": 180, "federation": 110}
_NO_LIMIT = {"per_second": 1_000_000, "burst_count": 1_000_000}
# Synapse as a federation peer of the scripted remote on loopback: no
# certificate checks (the remote's is self-signed), loopback allowed, any
# origin, and its inbound federation rate limit out of reach (ours has
# rate limits off too).
SYNAPSE_EXTRA: dict[str, Any] = {
    "federation_domain_whitelist": None,
    "federation_verify_certificates": False,
    "federation_ip_range_blacklist": [],
    "ip_range_blacklist": [],
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 1_000_000,
        "sleep_delay": 1,
        "reject_limit": 1_000_000,
        "concurrent": 1_000_000,
    },
}


def _sizes(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def _budgets(text: str) -> dict[str, float]:
    budgets = dict(DEFAULT_BUDGETS)
    for item in filter(None, text.split(",")):
        name, _, seconds = item.partition("=")
        if name not in budgets:
            raise SystemExit(f"--budgets: no phase {name!r} (phases: {', '.join(PHASES)})")
        budgets[name] = float(seconds)
    return budgets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_open_files() -> int:
    """Raise this process's (and so its children's) open-file limit to the
    hard limit: thousands of connections each take a descriptor on both
    sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _phase_runs(
    args: argparse.Namespace,
) -> dict[str, Callable[[Client, Target, Budget], Awaitable[PhaseResult]]]:
    return {
        "room": lambda c, t, b: scale_room.run(
            c, t, args.members, args.samples, args.concurrency, b
        ),
        "account": lambda c, t, b: scale_account.run(
            c, t, args.rooms, args.runs, args.concurrency, b
        ),
        "connections": lambda c, t, b: scale_connections.run(
            c, t, args.connections, args.fan_users, b
        ),
        "federation": lambda c, t, b: scale_federation.run(
            c, t, args.federation_rooms, args.federation_pdus, b
        ),
    }


async def _run(
    args: argparse.Namespace, admin_dsn: str, targets: list[Target], errors: list[str]
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    admin = await asyncpg.connect(admin_dsn)
    connector = aiohttp.TCPConnector(limit=args.concurrency + 16)
    timeout = aiohttp.ClientTimeout(total=600)
    try:
        for target in targets:
            target.admin = admin
            target.db = await asyncpg.connect(_database_url(admin_dsn, target.database))
            target.db_pid = await target.db.fetchval("SELECT pg_backend_pid()")
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            runs = _phase_runs(args)
            for phase in args.only:
                for target in targets:
                    budget = Budget(args.budgets[phase])
                    print(f"{phase} on {target.name} (budget {budget.seconds:.0f}s)", flush=True)
                    t0 = time.perf_counter()
                    try:
                        result = await runs[phase](Client(http, target.url), target, budget)
                    except (CheckFailed, SystemExit) as failed:
                        # A failed check ends the run, but the figures so far are kept.
                        print(f"{phase} on {target.name} FAILED: {failed}", flush=True)
                        errors.append(f"{phase} on {target.name}: {failed}")
                        return results
                    result.note = f"{time.perf_counter() - t0:.0f}s"
                    results.setdefault(phase, {})[target.name] = result.as_json()
    finally:
        for target in targets:
            if target.db is not None:
                await target.db.close()
        await admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="100,1000,10000", help="room sizes")
    parser.add_argument("--samples", type=int, default=5, help="joins/messages timed per size")
    parser.add_argument("--rooms", default="10,100,1000,3000", help="rooms of the big account")
    parser.add_argument("--runs", type=int, default=3, help="syncs timed per size")
    parser.add_argument("--connections", default="1000,5000,10000", help="open long polls")
    parser.add_argument(
        "--fan-users", type=int, default=100, help="users of the fan-out (10 polls each)"
    )
    parser.add_argument("--federation-pdus", type=int, default=1000, help="PDUs per intake")
    parser.add_argument(
        "--federation-rooms", default="1,100", help="rooms the PDUs are spread over"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (setup)")
    parser.add_argument("--pool-size", type=int, default=20, help="our PostgreSQL pool")
    parser.add_argument(
        "--budgets",
        default="",
        help="seconds per server per phase, e.g. room=300,account=200 (defaults: "
        + ",".join(f"{k}={v}" for k, v in DEFAULT_BUDGETS.items())
        + ")",
    )
    parser.add_argument("--only", default=",".join(PHASES), help="phases to run, in order")
    parser.add_argument("--ours-only", action="store_true", help="our server alone")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles of our server at each size (bench/results/scale-<time>-profiles/)",
    )
    args = parser.parse_args()
    if args.quick:
        args.members, args.rooms, args.connections = "20,50", "10,20", "100,200"
        args.fan_users, args.federation_pdus, args.federation_rooms = 10, 100, "1,10"
        args.samples, args.runs = 3, 2
    args.members, args.rooms = _sizes(args.members), _sizes(args.rooms)
    args.connections, args.federation_rooms = (
        _sizes(args.connections),
        _sizes(args.federation_rooms),
    )
    args.budgets = _budgets(args.budgets)
    args.only = [p for p in args.only.split(",") if p]
    if unknown := set(args.only) - set(PHASES):
        raise SystemExit(f"--only: unknown phases {sorted(unknown)} (phases: {', '.join(PHASES)})")
    open_files = _raise_open_files()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.profile:
        scale_common.PROFILE_DIR = RESULTS / f"scale-{stamp}-profiles"
        scale_common.PROFILE_DIR.mkdir(parents=True, exist_ok=True)

    bcrypt_rounds = server_config("", None, 1)["bcrypt_rounds"]
    started = time.perf_counter()
    with _postgres() as admin_dsn, ExitStack() as stack:
        os.environ["HOMESERVER_TEST_DSN"] = admin_dsn
        fed_port = _free_port()
        extra = {"federation_insecure": True, "federation_listen": f"127.0.0.1:{fed_port}"}
        ours = stack.enter_context(running_server("scale", args.pool_size, extra))
        targets = [
            Target(
                "ours",
                ours.url,
                f"https://127.0.0.1:{fed_port}",
                ours.pid,
                ours.database,
                "this tree",
            )
        ]
        if not args.ours_only:
            syn_fed = _free_port()
            synapse = stack.enter_context(
                running_synapse(admin_dsn, bcrypt_rounds, SYNAPSE_EXTRA, syn_fed)
            )
            targets.append(
                Target(
                    "Synapse",
                    synapse.url,
                    f"http://127.0.0.1:{syn_fed}",
                    synapse.pid,
                    synapse.database,
                    synapse.version,
                )
            )
        errors: list[str] = []
        results = asyncio.run(_run(args, admin_dsn, targets, errors))
        peak = {t.name: round(_peak_rss_mb(t.pid), 1) for t in targets}

    text, rows = scale_report.table(results)
    found = scale_report.goals(results)
    synapse_version = targets[1].version if len(targets) > 1 else None
    against = f"Synapse {synapse_version}" if synapse_version else "ours only"
    print(f"\n{against}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end")
    print(text)
    print(f"\npeak RSS (MB): {peak}\n")
    print(scale_report.goals_text(found))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"scale-{stamp}.json"
    settings = {k: v for k, v in vars(args).items()}
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg(),
                    "open_files_limit": open_files,
                },
                "synapse_version": synapse_version,
                "settings": settings,
                "results": results,
                "table": rows,
                "goals": found,
                "peak_rss_mb": peak,
                "failed": errors,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
        + "\n"
    )
    out.with_suffix(".md").write_text(scale_report.markdown(results, found))
    plots = scale_report.plot(results, out.with_suffix(""))
    written = [out.with_suffix(".md"), *plots]
    print(f"\nwritten: {out}" + "".join(f"\n         {p}" for p in written))
    if errors:
        raise SystemExit(f"FAILED: {errors}")


if __name__ == "__main__":
    main()
