"""pytest fixtures for interop tests with a real Synapse (imported by tests/conftest.py).

One Synapse serves the whole run: it starts in a few seconds, but a fresh one
per test would dominate the suite's time. Tests keep out of each other's way
by registering their own users (`synapse.register()` picks unique names).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.interop.synapse import (
    SynapseServer,
    create_synapse_database,
    drop_synapse_database,
    ensure_synapse_venv,
    free_port,
    postgres_database_config,
)


@pytest.fixture(scope="session")
async def synapse(
    postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SynapseServer]:
    """A running Synapse on its own C-collated database of the tests' PostgreSQL."""
    python = await asyncio.to_thread(ensure_synapse_venv)
    name = f"synapse_test_{os.getpid()}"
    await create_synapse_database(postgres.admin_dsn, name)
    try:
        async with SynapseServer(
            python,
            tmp_path_factory.mktemp("synapse"),
            postgres_database_config(postgres.admin_dsn, name),
        ) as server:
            yield server
    finally:
        await drop_synapse_database(postgres.admin_dsn, name)


async def start_federating_server(server_factory: Any, **overrides: Any) -> Any:
    """Our server as a federation peer of Synapse: named `127.0.0.1:PORT` after its
    TLS federation port (so Synapse reaches it by name, no DNS), accepting
    Synapse's self-signed certificate and loopback address."""
    port = free_port()
    return await server_factory(
        server_name=f"127.0.0.1:{port}",
        federation_listen=f"127.0.0.1:{port}",
        federation_insecure=True,
        **overrides,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failed test that used Synapse gets the tail of Synapse's log in its report."""
    report = yield
    server = getattr(item, "funcargs", {}).get("synapse")
    if report.failed and isinstance(server, SynapseServer):
        report.sections.append(("Synapse log", server.log_tail()))
    return report
