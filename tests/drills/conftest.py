"""Fixtures of the drills: a PostgreSQL of the drill's own and our server as a process."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.drills.harness import DrillPostgres, HomeserverProcess
from tests.interop.matrix_client import MatrixClient, register


@pytest.fixture
def drill_dir() -> Iterator[Path]:
    """A directory of the drill's own, outside pytest's base temp directory:
    other pytest sessions on the machine prune that one while a drill runs."""
    with tempfile.TemporaryDirectory(prefix="hs-drill-") as directory:
        yield Path(directory)


@pytest.fixture
async def drill_postgres(drill_dir: Path) -> AsyncIterator[DrillPostgres]:
    postgres = DrillPostgres(drill_dir / "postgres")
    await asyncio.to_thread(postgres.start)
    yield postgres
    await asyncio.to_thread(postgres.cleanup)


@pytest.fixture
async def homeserver_process(
    drill_postgres: DrillPostgres, drill_dir: Path
) -> AsyncIterator[Callable[..., Awaitable[HomeserverProcess]]]:
    """Start our server as a process on a fresh database of the drill's PostgreSQL."""
    started: list[HomeserverProcess] = []

    async def start(name: str = "hs", **overrides: Any) -> HomeserverProcess:
        dsn = await asyncio.to_thread(drill_postgres.create_database, name)
        process = HomeserverProcess(drill_dir / name, dsn, **overrides)
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:
        yield session


async def new_user(
    http: aiohttp.ClientSession, server: HomeserverProcess, name: str
) -> MatrixClient:
    return await register(http, server.url, name, "drill-password")
