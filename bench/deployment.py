"""Benchmark: a deployment of worker processes behind nginx beside one process.

Issue 21 ("Speed"): bench/send.py's load (users sending concurrently into
shared rooms, every acknowledged message read back and checked) against

- a deployment of real `homeserver run --worker NAME` processes on one fresh
  database: 2 client readers, 2 event persisters, 1 federation sender and
  1 background worker (the roles every deployment must also cover,
  federation_inbound, media, pusher and appservice, ride on those), behind
  nginx configured by `homeserver worker-routes --nginx`, every request
  going through nginx;
- then one process (no workers) on a fresh database, as send.py runs it.

Side by side: messages/s, send latency p50/p90/p99, and CPU per message of
all server processes (every worker, and nginx, shown apart) plus the
PostgreSQL backends serving their database (read from /proc, so only when
PostgreSQL runs on this machine).

Then the /sync wake-up across processes: a user whose long poll nginx keeps
on reader1 (found by the X-Homeserver-Worker header) while another sends
through nginx (to a persister); the time from the start of the send to the
poll returning with it, beside the same on the single process
(bench/cluster_wakeup.py's measurement). Also the deployment with nginx
left out (send straight to the room's owner, poll straight on reader1), to
tell the proxy's share from the cross-process wake-up's.

The database server is HOMESERVER_TEST_DSN's (new databases on it) or an
embedded PostgreSQL in a temporary directory. Results are written as JSON
to bench/results/deployment-<timestamp>.json.

Run: PYTHONPATH=$PWD .venv/bin/python bench/deployment.py [--quick] [--users 50]
     [--rooms 5] [--messages 20] [--concurrency 50] [--wakeups 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cluster_wakeup
import yaml
from _server import (
    V3,
    Client,
    _create_database,
    _database_url,
    machine_busy,
    percentile,
    process_cpu,
    register,
    running_server,
    sync_path,
)
from send import run_load

from homeserver.cluster.roles import owner_of
from tests.cluster.deployment import Deployment, deployment

RESULTS = Path(__file__).resolve().parent / "results"
SERVER_NAME = "bench.local"  # send.py checks senders against it
ROLES = {
    "reader1": ["client", "media"],
    "reader2": ["client", "federation_inbound"],
    "persister1": ["event_persister"],
    "persister2": ["event_persister"],
    "fedsender": ["federation_sender"],
    "background": ["background", "pusher", "appservice"],
}
PERSISTERS = ["persister1", "persister2"]


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc (Linux only)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        tree.setdefault(int(rest[1]), []).append(int(entry))
    return tree


def _backends(database: str) -> list[int]:
    """PostgreSQL backends serving `database`: their process title is
    "postgres: USER DATABASE HOST(PORT) STATE" (update_process_title, on by
    default on Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        if len(title) >= 3 and title[0] == "postgres:" and title[2] == database:
            found.append(int(entry))
    return found


class DeploymentServer:
    """The deployment as send.py's load sees it: nginx's URL, and the CPU of
    every worker, of nginx (master and its workers) and of the database's
    PostgreSQL backends between start() and stop()."""

    def __init__(self, cluster: Deployment, nginx_pid: int, database: str) -> None:
        self.url = f"http://{cluster.public_client}"
        self.cluster = cluster
        self._nginx_pid = nginx_pid
        self._database = database
        self._before: dict[str, dict[int, float]] = {}

    def _groups(self) -> dict[str, list[int]]:
        tree = _children()
        groups: dict[str, list[int]] = {}
        for name, worker in self.cluster.workers.items():
            assert worker.proc is not None
            groups[name] = [worker.proc.pid, *tree.get(worker.proc.pid, [])]
        groups["nginx"] = [self._nginx_pid, *tree.get(self._nginx_pid, [])]
        groups["postgres"] = _backends(self._database)
        return groups

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for group, pids in self._groups().items():
            prefix = "postgres" if group == "postgres" else ""
            cpu = {pid: process_cpu(pid, prefix) for pid in pids}
            sample[group] = {pid: v for pid, v in cpu.items() if v is not None}
        return sample

    def start(self, profile: bool = False) -> None:
        if profile:
            raise SystemExit("--profile is send.py's; the deployment is not profiled")
        self._before = self._sample()

    def stop(self) -> dict[str, Any]:
        after = self._sample()
        # Processes started during the run (pool connections) started from zero.
        spent = {
            group: sum(v - self._before.get(group, {}).get(pid, 0.0) for pid, v in pids.items())
            for group, pids in after.items()
        }
        pg = spent.pop("postgres")
        return {
            "cpu": sum(spent.values()),
            "pg_cpu": pg if after["postgres"] else None,
            "cpu_by_process": {**spent, "postgres backends": pg},
        }


async def _start_nginx(cluster: Deployment, prefix: Path) -> asyncio.subprocess.Process:
    """nginx in the foreground with its own prefix, pid file and temp dirs,
    on the config `homeserver worker-routes --nginx` writes; waits until it
    answers /versions."""
    nginx = nginx_binary()
    if nginx is None:
        raise SystemExit(
            "nginx is not installed (apt-get install nginx-light): this bench needs it"
        )
    routes = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homeserver", "worker-routes",
        "--config", str(cluster.config_path), "--nginx",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    text, _ = await routes.communicate()
    if routes.returncode != 0:
        raise SystemExit(f"worker-routes --nginx failed: {text.decode()}")
    (prefix / "logs").mkdir(parents=True)
    temp = "".join(
        f" {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Temp paths and the access log belong to the http block: added to it.
    conf = prefix / "nginx.conf"
    conf.write_text(text.decode().replace("http {", f"http {{ access_log off;{temp}", 1))
    settings = f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log;"
    proc = await asyncio.create_subprocess_exec(
        nginx, "-p", str(prefix), "-c", str(conf), "-g", settings
    )
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            if proc.returncode is not None:
                log = (prefix / "logs" / "error.log").read_text()
                raise SystemExit(f"nginx exited: {log}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(
                    f"http://{cluster.public_client}/_matrix/client/versions"
                ) as resp:
                    if resp.status == 200:
                        return proc
            await asyncio.sleep(0.1)
    raise SystemExit("nginx did not answer within 10 s")


@contextlib.asynccontextmanager
async def running_deployment(
    admin_dsn: str, data_dir: Path, pool_size: int
) -> AsyncIterator[DeploymentServer]:
    """The workers of ROLES on a new database, nginx in front; all stopped
    and the database dropped afterwards."""
    database = f"bench_deploy_{os.getpid()}"
    await _create_database(admin_dsn, database)
    cluster = deployment(
        _database_url(admin_dsn, database), data_dir / "hs", ROLES, server_name=SERVER_NAME
    )
    # The pool of each worker (the tests' config keeps theirs small).
    config = yaml.safe_load(cluster.config_path.read_text())
    config["database"]["max_pool_size"] = pool_size
    cluster.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    nginx = None
    try:
        started = time.perf_counter()
        # One first, alone: it migrates the database.
        await cluster.start("persister1")
        await cluster.start(*(name for name in ROLES if name != "persister1"))
        nginx = await _start_nginx(cluster, data_dir / "nginx")
        print(
            f"deployment: {len(ROLES)} workers ({', '.join(ROLES)}) + nginx up in "
            f"{time.perf_counter() - started:.1f}s"
        )
        yield DeploymentServer(cluster, nginx.pid, database)
    finally:
        if nginx is not None and nginx.returncode is None:
            nginx.send_signal(signal.SIGQUIT)
            await nginx.wait()
        await cluster.stop()
        await _create_database(admin_dsn, database, drop=True)


async def _poller_on(http: aiohttp.ClientSession, base: str, worker: str) -> tuple[str, str]:
    """(user id, token) of a new user whose /sync nginx sends to `worker`
    (nginx keeps a user's long polls on one reader by its access token)."""
    client = Client(http, base)
    for i in range(40):
        user_id, token = await register(client, f"poller{i}_{time.monotonic_ns()}")
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(base + sync_path(), headers=headers) as resp:
            if resp.headers.get("X-Homeserver-Worker") == worker:
                return user_id, token
    raise SystemExit(f"no user's /sync reached {worker} through nginx")


async def _deployment_wakeups(
    server: DeploymentServer, cluster: Deployment, iterations: int
) -> dict[str, list[float]]:
    """Wake-ups with the poll on reader1: through nginx (the send to whichever
    persister nginx picks, forwarded to the room's owner), and straight to the
    room's owner and reader1."""
    async with aiohttp.ClientSession() as http:
        via_nginx = Client(http, server.url)
        alice, alice_token = await register(via_nginx, f"alice_{time.monotonic_ns()}")
        bob, bob_token = await _poller_on(http, server.url, "reader1")
        room = await via_nginx.call(
            "POST", f"{V3}/createRoom", alice_token, {"invite": [bob], "preset": "private_chat"}
        )
        room_id = room["room_id"]
        await via_nginx.call("POST", f"{V3}/join/{room_id}", bob_token, {})
        owner = cluster.workers[owner_of(room_id, PERSISTERS)]
        to_owner = Client(http, f"http://{owner.client}")
        to_reader = Client(http, f"http://{cluster.workers['reader1'].client}")
        args = (alice_token, bob_token, room_id)
        await cluster_wakeup.measure(via_nginx, via_nginx, *args, 5)  # warm-up
        results: dict[str, list[float]] = {"nginx": [], "direct": []}
        rounds = 4
        # Interleaved, so that a drift of the machine's load weighs on both.
        for _ in range(rounds):
            results["nginx"] += await cluster_wakeup.measure(
                via_nginx, via_nginx, *args, max(1, iterations // rounds)
            )
            results["direct"] += await cluster_wakeup.measure(
                to_owner, to_reader, *args, max(1, iterations // rounds)
            )
        # The crossing alone, paired: each message sent to the room's owner
        # wakes a poller on the owner and one on reader1 at once.
        owner_url = f"http://{cluster.workers['persister1'].client}"
        same, cross = await cluster_wakeup.wakeups(
            owner_url,
            [owner_url, f"http://{cluster.workers['reader1'].client}"],
            iterations,
            room_wanted=lambda r: owner_of(r, PERSISTERS) == "persister1",
        )
        results["paired_same"], results["paired_cross"] = same, cross
        return results


async def _deployment_phase(args: argparse.Namespace, admin_dsn: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-deployment-") as tmp:
        async with running_deployment(admin_dsn, Path(tmp), args.worker_pool_size) as server:
            load = await run_load(args, server)
            wakeups = await _deployment_wakeups(server, server.cluster, args.wakeups)
    return {"load": load, "wakeups": wakeups}


def _single_phase(args: argparse.Namespace) -> dict[str, Any]:
    with running_server("deploy_single", args.pool_size) as server:
        load = asyncio.run(run_load(args, server))
        asyncio.run(cluster_wakeup.wakeups(server.url, [server.url], 5))  # warm-up
        wakeups = asyncio.run(cluster_wakeup.wakeups(server.url, [server.url], args.wakeups))[0]
    return {"load": load, "wakeups": wakeups}


def _ms(values: list[float], fraction: float) -> float:
    return percentile(sorted(values), fraction) * 1000


def _wakeup_figures(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": _ms(values, 0.5), "p99_ms": _ms(values, 0.99)}


def _table(deployed: dict[str, Any], single: dict[str, Any]) -> str:
    d, s = deployed["load"], single["load"]

    def cpu(figures: dict[str, Any], key: str) -> str:
        value = figures.get(key)
        return "n/a" if value is None else f"{value:.2f}"

    rows = [
        ("messages/s", f"{d['messages_per_s']:.0f}", f"{s['messages_per_s']:.0f}"),
        *(
            (f"send latency {p} ms", f"{d['latency_ms'][p]:.1f}", f"{s['latency_ms'][p]:.1f}")
            for p in ("p50", "p90", "p99")
        ),
        (
            "CPU ms/message, server processes",
            cpu(d, "server_cpu_ms_per_message"),
            cpu(s, "server_cpu_ms_per_message"),
        ),
        (
            "CPU ms/message, PostgreSQL backends",
            cpu(d, "pg_cpu_ms_per_message"),
            cpu(s, "pg_cpu_ms_per_message"),
        ),
        ("CPU ms/message, all", cpu(d, "cpu_ms_per_message"), cpu(s, "cpu_ms_per_message")),
        (
            "sync wake-up p50 / p99 ms",
            "{p50_ms:.2f} / {p99_ms:.2f}".format(**_wakeup_figures(deployed["wakeups"]["nginx"])),
            "{p50_ms:.2f} / {p99_ms:.2f}".format(**_wakeup_figures(single["wakeups"])),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    out = [f"{'':<{width}}  {'deployment':>14}  {'one process':>14}"]
    out += [f"{name:<{width}}  {a:>14}  {b:>14}" for name, a, b in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20, help="messages per user")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument(
        "--pool-size", type=int, default=20, help="the single process's PostgreSQL pool"
    )
    parser.add_argument(
        "--worker-pool-size", type=int, default=8, help="each worker's PostgreSQL pool"
    )
    parser.add_argument("--wakeups", type=int, default=100, help="sync wake-ups measured")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (10 users x 5 messages, 20 wake-ups)"
    )
    args = parser.parse_args()
    args.profile = False  # send.py's option; run_load reads it
    if args.quick:
        args.users, args.rooms, args.messages, args.wakeups = 10, 2, 5, 20
    load_before = os.getloadavg()
    machine = machine_busy()
    print("== deployment behind nginx ==")
    with cluster_wakeup.postgres() as admin_dsn:
        deployed = asyncio.run(_deployment_phase(args, admin_dsn))
    print("== one process ==")
    single = _single_phase(args)
    machine_after = machine_busy()

    deployed_wake = _wakeup_figures(deployed["wakeups"]["nginx"])
    direct_wake = _wakeup_figures(deployed["wakeups"]["direct"])
    single_wake = _wakeup_figures(single["wakeups"])
    added = deployed_wake["p50_ms"] - single_wake["p50_ms"]
    print()
    print(_table(deployed, single))
    by_process = deployed["load"].get("cpu_by_process", {})
    total = deployed["load"]["messages"]
    print(
        "deployment CPU ms/message by process: "
        + ", ".join(f"{name} {cpu / total * 1000:.2f}" for name, cpu in by_process.items())
    )
    print(
        f"sync wake-up, deployment without nginx (send to the room's owner, poll on "
        f"reader1): p50 {direct_wake['p50_ms']:.2f} ms, p99 {direct_wake['p99_ms']:.2f} ms"
    )
    print(
        f"added by the deployment to the sync wake-up: p50 {added:+.2f} ms through nginx, "
        f"{direct_wake['p50_ms'] - single_wake['p50_ms']:+.2f} ms without it (goal: < 5 ms)"
    )
    crossing = sorted(
        c - s
        for s, c in zip(
            deployed["wakeups"]["paired_same"], deployed["wakeups"]["paired_cross"], strict=True
        )
    )
    print(
        "sync wake-up in the deployment, one message polled on its owner (persister1) and on "
        f"reader1: p50 {_ms(deployed['wakeups']['paired_same'], 0.5):.2f} / "
        f"{_ms(deployed['wakeups']['paired_cross'], 0.5):.2f} ms; added across processes "
        f"(paired): p50 {percentile(crossing, 0.5) * 1000:+.2f} ms, "
        f"p99 {percentile(crossing, 0.99) * 1000:+.2f} ms (goal: < 5 ms)"
    )
    load_after = os.getloadavg()
    busy = None
    if machine is not None and machine_after is not None:
        busy = (machine_after[0] - machine[0]) / max(1, machine_after[1] - machine[1])
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after" + ("" if busy is None else f"; {busy:.0%} busy over the run")
    )

    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"deployment-{stamp}.json"
    result = {
        "when": stamp,
        "sizes": {
            k: getattr(args, k)
            for k in (
                "users",
                "rooms",
                "messages",
                "concurrency",
                "pool_size",
                "worker_pool_size",
                "wakeups",
            )
        },
        "workers": ROLES,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "busy": busy,
        },
        "deployment": {
            "load": deployed["load"],
            "sync_wakeup_via_nginx": deployed_wake,
            "sync_wakeup_direct": direct_wake,
        },
        "single_process": {"load": single["load"], "sync_wakeup": single_wake},
        "sync_wakeup_added_p50_ms": added,
    }
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
