"""Benchmark: the floor of a sent event's CPU cost, what no homeserver can skip.

A room message's PDU of a room of version 10, as this server builds one (three
auth events, one prev event), goes through what the spec requires of every
event and what durability requires of every acknowledged one, and nothing
else:

- its content hash: canonical JSON of the event, SHA-256;
- its signature: canonical JSON of its redacted form, ed25519;
- its event id: canonical JSON of the redacted, signed form, SHA-256;
- one durable PostgreSQL transaction (synchronous commit, on the default
  settings) writing several rows: the event's row with its JSON, its prev
  and auth edges. One statement, autocommitted: a single round trip.

The CPU time of this process and of its PostgreSQL backends is measured, per
event, with `--concurrency` events in flight on as many connections. The
libraries are the ones the server uses (canonicaljson, hashlib, PyNaCl through
signedjson, asyncpg), so that the ratio of a real send to this floor says how
much of a send is everything else: HTTP, auth, state, authorisation, the
room's lock, side tables, commit hooks, waking syncs.

Run: .venv/bin/python bench/floor.py [--events 2000] [--concurrency 10]

`send.py` runs it after its own measurement and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from _server import _create_database, _database_url, _postgres_cpu, cpu_seconds
from canonicaljson import encode_canonical_json
from signedjson.key import generate_signing_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from storage.database import EmbeddedPostgres

_TABLES = """
CREATE TABLE floor_events (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE floor_edges (event_id TEXT NOT NULL, target TEXT NOT NULL, auth BOOLEAN NOT NULL,
    PRIMARY KEY (event_id, target));
"""

_WRITE = """
WITH event AS (
    INSERT INTO floor_events (event_id, room_id, json) VALUES ($1, $2, $3)
)
INSERT INTO floor_edges (event_id, target, auth)
SELECT $1, t, a FROM unnest($4::text[], $5::bool[]) AS u(t, a)
"""

# What redaction keeps of a room message in room version 10.
_KEPT = ("event_id", "type", "room_id", "sender", "state_key", "hashes", "signatures", "depth")
_KEPT += ("prev_events", "auth_events", "origin_server_ts")


def _redacted(pdu: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in pdu.items() if k in _KEPT}
    kept["content"] = {}
    return kept


def make_event(n: int, signing_key: Any) -> tuple[str, dict[str, Any]]:
    """Hash, sign and name the n-th message: (event id, PDU)."""
    pdu: dict[str, Any] = {
        "room_id": "!floor:bench.local",
        "type": "m.room.message",
        "sender": f"@u{n % 50}:bench.local",
        "content": {"msgtype": "m.text", "body": f"message {n} from user {n % 50}"},
        "prev_events": [f"$prev{n}"],
        "auth_events": ["$create", "$power_levels", f"$member{n % 50}"],
        "depth": n + 10,
        "origin_server_ts": 1_800_000_000_000 + n,
    }
    pdu["hashes"] = {"sha256": encode_base64(hashlib.sha256(encode_canonical_json(pdu)).digest())}
    signed = sign_json(_redacted(pdu), "bench.local", signing_key)
    pdu["signatures"] = signed["signatures"]
    event_id = "$" + encode_base64(
        hashlib.sha256(encode_canonical_json(_redacted(pdu))).digest(), urlsafe=True
    )
    return event_id, pdu


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[str]:
    """A fresh database: on HOMESERVER_TEST_DSN's server, or an embedded one."""
    admin_dsn = os.environ.get("HOMESERVER_TEST_DSN")
    if admin_dsn:
        name = f"bench_floor_{os.getpid()}"
        await _create_database(admin_dsn, name)
        try:
            yield _database_url(admin_dsn, name)
        finally:
            await _create_database(admin_dsn, name, drop=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp) / "pgdata")
        try:
            yield embedded.start()
        finally:
            embedded.stop()


async def measure_floor(events: int = 2000, concurrency: int = 10) -> dict[str, float]:
    """CPU milliseconds per event of the floor: {"server": ..., "pg": ..., "total": ...}."""
    signing_key = generate_signing_key("floor")
    async with _database() as dsn:
        setup = await asyncpg.connect(dsn)
        try:
            await setup.execute(_TABLES)
        finally:
            await setup.close()
        conns = [await asyncpg.connect(dsn) for _ in range(concurrency)]
        try:
            pids = [c.get_server_pid() for c in conns]
            # Warm up: statements prepared, caches loaded.
            for i, conn in enumerate(conns):
                await _one(conn, -1 - i, signing_key)
            backends = [_postgres_cpu(p) for p in pids]
            cpu = cpu_seconds()
            await asyncio.gather(
                *(
                    _worker(conn, range(i, events, concurrency), signing_key)
                    for i, conn in enumerate(conns)
                )
            )
            server = (cpu_seconds() - cpu) / events * 1000
            after = [_postgres_cpu(p) for p in pids]
        finally:
            for conn in conns:
                await conn.close()
    pg = (
        sum(a - b for a, b in zip(after, backends, strict=True)) / events * 1000
        if None not in backends and None not in after
        else float("nan")
    )
    return {"server": server, "pg": pg, "total": server + (0.0 if pg != pg else pg)}


async def _worker(conn: asyncpg.Connection, ns: range, signing_key: Any) -> None:
    for n in ns:
        await _one(conn, n, signing_key)


async def _one(conn: asyncpg.Connection, n: int, signing_key: Any) -> None:
    event_id, pdu = make_event(n, signing_key)
    await conn.execute(
        _WRITE,
        event_id,
        pdu["room_id"],
        json.dumps(pdu, ensure_ascii=False, separators=(",", ":")),
        [*pdu["prev_events"], *pdu["auth_events"]],
        [False] * len(pdu["prev_events"]) + [True] * len(pdu["auth_events"]),
    )


def describe(floor: dict[str, float]) -> str:
    pg = (
        "n/a (PostgreSQL not on this machine)"
        if floor["pg"] != floor["pg"]
        else f"{floor['pg']:.3f} ms"
    )
    return f"floor per event: python {floor['server']:.3f} ms, PostgreSQL backends {pg}, total {floor['total']:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10, help="connections in flight")
    args = parser.parse_args()
    print(describe(asyncio.run(measure_floor(args.events, args.concurrency))))


if __name__ == "__main__":
    main()
