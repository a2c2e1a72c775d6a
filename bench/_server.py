"""What the client-API benchmarks share: a server in a child process on a
fresh database, a small HTTP client, and the figures (percentiles, CPU time).

The server runs in its own process so that the load generator does not share
its event loop. Between `start()` and `stop()` the child measures its own CPU
time, the CPU time of the PostgreSQL backends serving its database (read from
/proc, so Linux only and only when PostgreSQL runs on this machine) and,
optionally, profiles itself with cProfile.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, Protocol

import aiohttp
import asyncpg

from homeserver.config import config_from_dict
from homeserver.server import HomeServer

V3 = "/_matrix/client/v3"
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def server_config(data_dir: str, dsn: str | None, pool_size: int) -> dict[str, Any]:
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


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    times = os.times()
    return times.user + times.system


def machine_busy() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def process_cpu(pid: int, name_prefix: str = "") -> float | None:
    """User + system CPU seconds of a process on this machine, from
    /proc/<pid>/stat; None if there is no such process here (or its command
    name does not start with `name_prefix`)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces; the fields after it are fixed.
    name, _, rest = stat.partition("(")[2].rpartition(")")
    if not name.startswith(name_prefix):
        return None
    fields = rest.split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def _postgres_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL process on this machine (None: not here)."""
    return process_cpu(pid, "postgres")


async def _backend_cpu(server: HomeServer) -> dict[int, float] | None:
    """CPU seconds of each PostgreSQL backend connected to the server's database.

    None when /proc cannot show them (PostgreSQL on another machine).
    """
    assert server.pool is not None
    rows = await server.pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    )
    cpu = {row["pid"]: _postgres_cpu(row["pid"]) for row in rows}
    found = {pid: v for pid, v in cpu.items() if v is not None}
    return found or None


def _make_key_files(config: dict[str, Any]) -> None:
    """Child process: the signing key and TLS certificate of a first start.

    Done apart from the measured server, as `make run` does it through
    `generate-config` and Synapse through `--generate-config`, so that the
    server's memory is that of a server started on existing key files.
    """
    from homeserver.keyfiles import ensure_self_signed_certificate, ensure_signing_key

    loaded = config_from_dict(config)
    ensure_signing_key(loaded.path(loaded.signing_key_path))
    ensure_self_signed_certificate(
        loaded.path(loaded.tls_certificate_path),
        loaded.path(loaded.tls_private_key_path),
        loaded.server_name,
    )


def _serve(config: dict[str, Any], conn: Connection) -> None:
    """Child process: run the server until "exit"; between ("start", profile)
    and "stop", measure its CPU time and PostgreSQL's (and profile it)."""

    async def main() -> None:
        server = HomeServer(config_from_dict(config))
        await server.start()
        conn.send(server.client_port)
        while (message := await asyncio.to_thread(conn.recv)) != "exit":
            _, profile = message
            # CPU time, not wall time: a send mostly waits on PostgreSQL, and
            # wall time would charge that wait (and other processes) to the
            # call that yielded the CPU.
            profiler = cProfile.Profile(time.process_time) if profile else None
            backends = await _backend_cpu(server)
            cpu = cpu_seconds()
            if profiler is not None:
                profiler.enable()
            await asyncio.to_thread(conn.recv)
            if profiler is not None:
                profiler.disable()
            report: dict[str, Any] = {"cpu": cpu_seconds() - cpu, "pg_cpu": None}
            after = await _backend_cpu(server)
            if backends is not None and after is not None:
                # Backends opened during the run started from zero.
                report["pg_cpu"] = sum(v - backends.get(pid, 0.0) for pid, v in after.items())
            if profiler is not None:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(25)
                stats.sort_stats("cumulative").print_stats(40)
                report["profile"] = out.getvalue()
            conn.send(report)
        await server.stop()

    asyncio.run(main())


class MeasuredServer(Protocol):
    """What a load runs against: a base URL and a measured phase (CPU time)."""

    url: str

    def start(self, profile: bool = False) -> None: ...

    def stop(self) -> dict[str, Any]: ...


class ServerProcess:
    """The handle on the child: its port, and the measured phases."""

    def __init__(self, conn: Connection, port: int, pid: int | None, database: str) -> None:
        self._conn = conn
        self.port = port
        self.pid = pid
        self.database = database
        self.url = f"http://127.0.0.1:{port}"

    def start(self, profile: bool = False) -> None:
        """Start measuring the server's CPU time (and profiling it)."""
        self._conn.send(("start", profile))

    def stop(self) -> dict[str, Any]:
        """Stop measuring: {"cpu": s, "pg_cpu": s or None, "profile": text if profiled}."""
        self._conn.send("stop")
        return self._conn.recv()


@contextlib.contextmanager
def running_server(
    name: str, pool_size: int, extra: dict[str, Any] | None = None
) -> Iterator[ServerProcess]:
    """A server in a child process on a fresh database, stopped and dropped afterwards.

    The database is the embedded PostgreSQL in a temporary directory or, when
    HOMESERVER_TEST_DSN is set, a new database `bench_<name>_<pid>` on that server.
    `extra` adds config keys (the appservice bench registers its appservice).
    """
    admin_dsn = os.environ.get("HOMESERVER_TEST_DSN")
    db_name = f"bench_{name}_{os.getpid()}"
    dsn = _database_url(admin_dsn, db_name) if admin_dsn else None
    if admin_dsn:
        asyncio.run(_create_database(admin_dsn, db_name))
    spawn = multiprocessing.get_context("spawn")
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as data_dir:
            config = server_config(data_dir, dsn, pool_size)
            config.update(extra or {})
            keys = spawn.Process(target=_make_key_files, args=(config,))
            keys.start()
            keys.join()
            if keys.exitcode != 0:
                raise SystemExit(f"making the key files failed with exit code {keys.exitcode}")
            parent, child = spawn.Pipe()
            process = spawn.Process(target=_serve, args=(config, child))
            process.start()
            try:
                port = parent.recv()
                yield ServerProcess(
                    parent, port, process.pid, db_name if admin_dsn else "homeserver"
                )
            finally:
                if process.is_alive():
                    parent.send("exit")
                process.join(timeout=60)
    finally:
        if admin_dsn:
            asyncio.run(_create_database(admin_dsn, db_name, drop=True))


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> dict[str, Any]:
        data, _ = await self.call_sized(method, path, token, body)
        return data

    async def call_sized(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[dict[str, Any], int]:
        """The JSON response and its size in bytes; raises on any status but 200."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
            raw = await r.read()
            data = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{method} {path}: {r.status} {data}")
            return data, len(raw)


async def gather_limited(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


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


async def register(client: Client, name: str) -> tuple[str, str]:
    """(user id, access token) of a new account (dummy flow)."""
    body = {"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}
    user = await client.call("POST", f"{V3}/register", body=body)
    return user["user_id"], user["access_token"]


def sync_path(since: str | None = None, timeout_ms: int = 0, filter: Any = None) -> str:
    """A /sync request's path and query."""
    query: dict[str, str] = {"timeout": str(timeout_ms)}
    if since is not None:
        query["since"] = since
    if filter is not None:
        query["filter"] = json.dumps(filter, separators=(",", ":"))
    return f"{V3}/sync?{urllib.parse.urlencode(query)}"
