"""A federation peer down for minutes: a real Synapse on loopback shares a room
with our server; first Synapse is stopped while our user sends, then our
server is stopped while Synapse's user sends. After each return, every event
sent meanwhile arrives on the other side within a minute, in order, once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.drills.harness import DrillPostgres, HomeserverProcess
from tests.drills.load import room_messages
from tests.interop.matrix_client import MatrixClient, register
from tests.interop.synapse import (
    SynapseServer,
    create_synapse_database,
    ensure_synapse_venv,
    free_port,
    postgres_database_config,
)

pytestmark = pytest.mark.drills

# How long a server stays down ("several minutes"; two keep the drill short).
DOWN_S = 120.0
SEND_EVERY_S = 4.0
# Every event sent meanwhile must have arrived this long after the return.
DELIVERY_DEADLINE_S = 60.0


async def send_while_down(client: MatrixClient, room_id: str, tag: str) -> list[str]:
    """One message every SEND_EVERY_S for DOWN_S; the bodies, in the order sent."""
    bodies = []
    deadline = time.monotonic() + DOWN_S
    n = 0
    while time.monotonic() < deadline:
        body = f"{tag}-{n}"
        await client.send_text(room_id, body)
        bodies.append(body)
        n += 1
        await asyncio.sleep(SEND_EVERY_S)
    return bodies


async def wait_for_delivery(
    reader: MatrixClient, room_id: str, bodies: list[str], tag: str
) -> float:
    """Seconds until `reader` sees every one of `bodies` in its room's history:
    in the order sent, none twice; fails after DELIVERY_DEADLINE_S."""
    started = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - started < DELIVERY_DEADLINE_S:
        events = await room_messages(reader, room_id)
        seen = [
            e["content"]["body"]
            for e in events
            if e["content"].get("body", "").startswith(tag + "-")
        ]
        if set(bodies) <= set(seen):
            assert seen == bodies, f"out of order or twice: {seen}"
            return time.monotonic() - started
        await asyncio.sleep(1)
    missing = [b for b in bodies if b not in seen]
    raise AssertionError(
        f"{len(missing)} of {len(bodies)} events not delivered {DELIVERY_DEADLINE_S:.0f} s"
        f" after the return: {missing[:10]}"
    )


async def test_a_peer_down_for_minutes_catches_up_within_a_minute(drill_dir: Path) -> None:
    python = await asyncio.to_thread(ensure_synapse_venv)
    postgres = DrillPostgres(drill_dir / "postgres")
    await asyncio.to_thread(postgres.start)
    await create_synapse_database(postgres.admin_dsn, "synapse")
    port = free_port()
    ours = HomeserverProcess(
        drill_dir / "hs",
        await asyncio.to_thread(postgres.create_database, "hs"),
        server_name=f"127.0.0.1:{port}",
        federation_listen=f"127.0.0.1:{port}",
        federation_insecure=True,
    )
    ours.federation_port = port
    synapse = SynapseServer(
        python, drill_dir / "synapse", postgres_database_config(postgres.admin_dsn, "synapse")
    )
    try:
        await ours.start()
        await synapse.start()
        async with aiohttp.ClientSession() as http:
            alice = await register(http, ours.url, "alice", "drill-password")
            room_id = await alice.create_room(preset="public_chat")
            bob = await synapse.register()
            await bob.join(room_id, via=[ours.config["server_name"]])
            await alice.send_text(room_id, "welcome")

            # Synapse is down while our user sends.
            await synapse.stop()
            sent = await send_while_down(alice, room_id, "ours")
            await synapse.start()
            bob.http = synapse.http
            took = await wait_for_delivery(bob, room_id, sent, "ours")
            print(f"Synapse back: {len(sent)} events delivered in {took:.1f} s")

            # Our server is down while Synapse's user sends. Synapse retries
            # on its own schedule (a minute and more apart); our server asks
            # for what it missed as it starts.
            await ours.stop()
            sent = await send_while_down(bob, room_id, "theirs")
            await ours.start()
            took = await wait_for_delivery(alice, room_id, sent, "theirs")
            print(f"our server back: {len(sent)} events delivered in {took:.1f} s")
    finally:
        await synapse.stop()
        await ours.stop()
        await asyncio.to_thread(postgres.cleanup)
