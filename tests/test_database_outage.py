"""PostgreSQL stopped under a running server: requests are answered 503 with
Retry-After (not 500) while it is away, and the server recovers by itself.

The test runs its own embedded PostgreSQL: the session's one is shared by
every test and must not be stopped.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from storage.database import (
    DatabaseUnavailableError,
    EmbeddedPostgres,
    create_pool,
    is_database_unavailable,
)
from tests.conftest import RunningServer, make_config, start_server

V3 = "/_matrix/client/v3"


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    # Not under pytest's tmp_path: PostgreSQL runs as its own user, and each
    # pytest-xdist worker makes pytest's temporary root private again when
    # it first uses it, cutting a running server off from its files.
    with tempfile.TemporaryDirectory(prefix="hs-outage-pg-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pgdata")
        await asyncio.to_thread(postgres.start)
        dsn = await asyncio.to_thread(postgres.create_database, "outage")
        yield postgres, dsn
        await asyncio.to_thread(postgres.stop)


async def call(
    hs: RunningServer, method: str, path: str, token: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    async with hs.http.request(
        method,
        hs.url + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=20),
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_requests_get_503_while_postgresql_is_away_and_recover(
    own_postgres, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    postgres, dsn = own_postgres
    hs = await start_server(make_config(dsn, tmp_path / "data"))
    away = False
    try:
        reg = await hs.register("ada")
        token = reg["access_token"]
        status, _, room = await call(hs, "POST", f"{V3}/createRoom", token, {})
        assert status == 200
        send = f"{V3}/rooms/{room['room_id']}/send/m.room.message"

        await asyncio.to_thread(postgres.stop)
        away = True
        requests = [
            ("GET", f"{V3}/profile/@ada:localhost", None),
            ("PUT", f"{send}/t1", {"msgtype": "m.text", "body": "while away"}),
            ("GET", f"{V3}/rooms/{room['room_id']}/messages?dir=b", None),
            ("GET", f"{V3}/sync?timeout=0", None),
        ]
        for method, path, body in requests:
            status, headers, answer = await call(hs, method, path, token, body)
            assert (status, answer["errcode"]) == (503, "M_UNKNOWN"), (path, answer)
            assert int(headers["Retry-After"]) >= 1

        await asyncio.to_thread(postgres.start)
        away = False
        started = time.monotonic()
        while True:
            status, _, answer = await call(hs, "GET", f"{V3}/profile/@ada:localhost", token)
            if status == 200 or time.monotonic() - started > 15:
                break
            await asyncio.sleep(0.2)
        assert (status, answer["displayname"]) == (200, "ada")
        # The send refused while the database was away goes through when retried.
        status, _, sent = await call(hs, "PUT", f"{send}/t1", token, {"msgtype": "m.text"})
        assert status == 200 and sent["event_id"].startswith("$")
    finally:
        if away:
            await asyncio.to_thread(postgres.start)
        await hs.http.close()
        await hs.server.stop()
    failures = [
        r.getMessage()
        for r in caplog.records
        if r.name == "homeserver.api.http" and r.levelno >= logging.ERROR
    ]
    assert failures == []
    assert not any(" 500 " in r.getMessage() for r in caplog.records)


async def test_a_transaction_cut_off_by_a_stop_counts_as_the_database_away(own_postgres):
    """A query in flight when PostgreSQL stops fails leaving its transaction
    with "the underlying connection is closed"; the connection error under it
    is what decides the answer (503, not 500)."""
    postgres, dsn = own_postgres
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:

        async def slow_transaction() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow_transaction())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.stop)
        with pytest.raises(Exception) as cut_off:
            await asyncio.wait_for(task, 20)
        assert is_database_unavailable(cut_off.value)
        with pytest.raises(DatabaseUnavailableError) as refused:
            await pool.fetchval("SELECT 1")
        assert is_database_unavailable(refused.value)
        # A fault of the query itself is not the database being away.
        await asyncio.to_thread(postgres.start)
        with pytest.raises(asyncpg.PostgresError) as bad_query:
            await pool.fetchval("SELECT no_such_column")
        assert not is_database_unavailable(bad_query.value)
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
