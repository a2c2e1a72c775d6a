"""Failures in a cluster's streams: a reader whose notification connection is
killed catches up from the database; a busy writer that stops answering holds
readers back (its positions may still commit) until its session ends, and
then no longer does; a writer process killed does not stop readers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import yaml

from storage import stream_writers
from tests.cluster.shared import bodies, create_room, pair, parked, send, sync, timed
from tests.cluster.test_failover_processes import start_process
from tests.test_process import free_port, run_cli, wait_until_up


async def test_a_reader_whose_connection_is_killed_catches_up(server_factory: Any, database: str):
    a, b = await pair(server_factory)
    alice = await a.register("alice")
    token = alice["access_token"]
    room_id = await create_room(a, token)
    since = (await sync(b, token))["next_batch"]
    poll = asyncio.create_task(timed(sync(b, token, since, timeout_ms=20_000)))
    await parked(poll)

    conn = await asyncpg.connect(database)
    try:
        listening = await stream_writers.holder(conn, "b")
        assert listening is not None
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", listening)
        # Sent while B listens to nothing: B learns of it from the table.
        await send(a, token, room_id, "while b was away")
        elapsed, response = await poll
        assert bodies(response, room_id) == ["while b was away"]
        assert elapsed < 5, elapsed
        # B listens again (under a new session) and follows as before.
        poll = asyncio.create_task(timed(sync(b, token, response["next_batch"], timeout_ms=20_000)))
        await parked(poll)
        await send(a, token, room_id, "after")
        elapsed, response = await poll
        assert bodies(response, room_id) == ["after"]
        assert elapsed < 2, elapsed
        assert await stream_writers.holder(conn, "b") not in (None, listening)
    finally:
        await conn.close()


async def test_a_busy_writer_holds_readers_back_until_its_session_ends(
    server_factory: Any, database: str
):
    """A writer that announced itself busy (it may have a position in flight)
    and then stops answering: readers wait for it, until its session (and so
    its lock) is gone."""
    a, b = await pair(server_factory)
    alice = await a.register("alice")
    token = alice["access_token"]
    room_id = await create_room(a, token)
    since = (await sync(b, token))["next_batch"]
    ghost = await asyncpg.connect(database)
    try:
        assert await stream_writers.hold_instance(ghost, "ghost")
        position = await ghost.fetchval("SELECT last_value FROM events_stream")
        busy = json.dumps({"s": "events", "w": "ghost", "p": position})
        await stream_writers.announce(ghost, "ghost", {"events": (position, False)}, [busy])

        poll = asyncio.create_task(timed(sync(b, token, since, timeout_ms=20_000)))
        await parked(poll)
        await send(a, token, room_id, "held back")
        # Longer than two checks for dead writers: the ghost is alive.
        await asyncio.sleep(1.2)
        assert not poll.done()
    finally:
        await ghost.close()
    elapsed, response = await poll
    assert bodies(response, room_id) == ["held back"]
    assert elapsed < 5, elapsed


async def test_a_killed_writer_process_does_not_stop_readers(
    server_factory: Any, database: str, tmp_path: Path
):
    # A third process of the deployment, as a real process, killed (SIGKILL)
    # after it wrote.
    config = tmp_path / "writer.yaml"
    client = f"127.0.0.1:{free_port()}"
    code, out = await run_cli(
        "generate-config",
        "--config",
        str(config),
        "--database-dsn",
        database,
        "--client-listen",
        client,
        "--federation-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert code == 0, out
    data = yaml.safe_load(config.read_text())
    data["cluster"] = {"enabled": True, "instance_name": "doomed"}
    config.write_text(yaml.safe_dump(data))
    a, b = await pair(server_factory)
    proc, _ = await start_process(config)
    try:
        await wait_until_up(f"http://{client}/_matrix/client/versions", proc)
        alice = await a.register("alice")
        token = alice["access_token"]
        # It writes (account data, through its own stream position), then dies.
        async with aiohttp.ClientSession() as http:
            async with http.put(
                f"http://{client}/_matrix/client/v3/user/{quote(alice['user_id'])}"
                "/account_data/org.example.last",
                json={"from": "doomed"},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 200, await response.text()
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()

        room_id = await create_room(a, token)
        since = (await sync(b, token))["next_batch"]
        poll = asyncio.create_task(timed(sync(b, token, since, timeout_ms=20_000)))
        await parked(poll)
        await send(a, token, room_id, "after the kill")
        elapsed, response = await poll
        assert bodies(response, room_id) == ["after the kill"]
        assert elapsed < 5, elapsed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
