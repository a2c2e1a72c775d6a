"""Shared fixtures: a real PostgreSQL and real servers on loopback.

PostgreSQL is the one named by HOMESERVER_TEST_DSN, or an embedded one
(pgserver) started once for the session. The schema is migrated once into a
template database; every test gets a fresh copy of it, so tests never see
each other's data.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import attrs
import nio
import pytest

from homeserver.config import Config, RateLimits, config_from_dict
from homeserver.server import HomeServer
from storage.database import EmbeddedPostgres, migrate
from tests.fake_identity_server import ca, idserver  # noqa: F401 (identity server fixtures)
from tests.interop.fixtures import (  # noqa: F401 (the Synapse fixture and its report hook)
    pytest_runtest_makereport,
    synapse,
)

# Per pytest-xdist worker: each worker migrates its own template, so workers
# sharing one PostgreSQL (HOMESERVER_TEST_DSN) never drop each other's.
TEMPLATE_DB = f"hs_test_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
_db_counter = itertools.count()


@attrs.frozen
class PostgresServer:
    """Builds DSNs for databases on one server."""

    admin_dsn: str

    def dsn(self, database: str) -> str:
        base, sep, query = self.admin_dsn.partition("?")
        root = base.rsplit("/", 1)[0]
        return f"{root}/{database}{sep}{query}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    dsn = os.environ.get("HOMESERVER_TEST_DSN")
    if dsn:
        yield PostgresServer(dsn)
        return
    with tempfile.TemporaryDirectory(prefix="hs-pg-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp) / "pgdata")
        dsn = embedded.start()
        asyncio.run(_skip_durability(dsn))
        yield PostgresServer(dsn)
        embedded.stop()


async def _skip_durability(dsn: str) -> None:
    """The throw-away test server need not survive a power cut: without
    fsync, each test's CREATE DATABASE and every commit skip the disk flushes
    that dominate a test's setup. (Crash-safety itself is what the drills
    test, with their own PostgreSQL.)"""
    conn = await asyncpg.connect(dsn)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_db(postgres: PostgresServer) -> str:
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(postgres.dsn(TEMPLATE_DB))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE_DB


@pytest.fixture
async def database(postgres: PostgresServer, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; yields its DSN."""
    name = f"hs_test_{os.getpid()}_{next(_db_counter)}"
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await conn.close()
    yield postgres.dsn(name)
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


def make_config(dsn: str, data_dir: Path, **overrides: Any) -> Config:
    """A config for a test server: loopback, any free port, fast bcrypt, no rate limits."""
    data: dict[str, Any] = {
        "server_name": "localhost",
        "data_dir": str(data_dir),
        "client_listen": "127.0.0.1:0",
        "federation_listen": "127.0.0.1:0",
        "database": {"dsn": dsn, "min_pool_size": 1, "max_pool_size": 5},
        "enable_registration": True,
        "registration_requires_token": False,
        "bcrypt_rounds": 4,
        "rate_limits": {"enabled": False},
    }
    data.update(overrides)
    return config_from_dict(data)


@attrs.define
class RunningServer:
    server: HomeServer
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.client_port}"

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.server.pool is not None
        return self.server.pool

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request; return the status and the decoded JSON body (or None)."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=all_headers
        ) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return resp.status, body

    async def register(self, username: str, password: str = "secret", **extra: Any) -> dict:
        status, body = await self.request(
            "POST",
            "/_matrix/client/v3/register",
            json={
                "username": username,
                "password": password,
                "auth": {"type": "m.login.dummy"},
                **extra,
            },
        )
        assert status == 200, body
        return body


async def start_server(config: Config) -> RunningServer:
    server = HomeServer(config)
    await server.start()
    return RunningServer(server, aiohttp.ClientSession())


@pytest.fixture
async def server_factory(database: str, tmp_path: Path) -> AsyncIterator[Any]:
    """Start a server on the test's database with config overrides; stopped afterwards."""
    started: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        running = await start_server(make_config(database, tmp_path, **overrides))
        started.append(running)
        return running

    yield start
    for running in started:
        await running.http.close()
        await running.server.stop()


@pytest.fixture
async def hs(server_factory: Any) -> RunningServer:
    return await server_factory()


def rate_limits_on(**limits: dict[str, float]) -> dict[str, Any]:
    """Config overrides that switch rate limiting on, with some limits replaced."""
    data = attrs.asdict(RateLimits())
    data.update(limits)
    return {"rate_limits": data}


@pytest.fixture
async def login(hs: RunningServer) -> AsyncIterator[Any]:
    """Registers a user and returns a logged-in matrix-nio client; closes them afterwards."""
    clients: list[nio.AsyncClient] = []

    async def make(name: str) -> nio.AsyncClient:
        body = await hs.register(name)
        client = nio.AsyncClient(hs.url, body["user_id"])
        client.restore_login(body["user_id"], body["device_id"], body["access_token"])
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def users(login: Any) -> Any:
    """The same as `login`, under the name some test modules use."""
    return login
