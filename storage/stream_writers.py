"""How far each process of a cluster has persisted each stream.

A writer (one process, named by its instance name) holds a session advisory
lock on its notification connection for as long as it lives; its rows in
`stream_writers` say up to where every position it took is settled. Moves are
written and announced with `NOTIFY` in one statement, so a reader that reads
the table after LISTENing misses nothing. A writer whose lock is free is dead:
its rows no longer hold readers back.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

CHANNEL = "homeserver_streams"

_KEY = "hashtextextended('stream-writer:' || {}, 0)"

_SESSIONS = "homeserver:"

# Whether the writer named by the expression's instance is alive: it holds
# its lock, or has any session open (a position it took on one may still
# commit, even when its notification connection alone was cut).
_ALIVE = (
    """(EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = {key})
  OR EXISTS (
    SELECT 1 FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.application_name = '"""
    + _SESSIONS
    + """' || {name}))"""
)


def application_name(instance: str) -> str:
    """The name of every database session of the writer `instance`."""
    return _SESSIONS + instance


async def hold_instance(conn: asyncpg.Connection, instance: str) -> bool:
    """Take the instance's lock on `conn`; False if another session has it
    (another live process runs under the same instance name)."""
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({_KEY.format('$1')})", instance))


async def register(
    conn: asyncpg.Connection, instance: str, sequences: dict[str, str], payloads: Sequence[str]
) -> dict[str, int]:
    """Before this writer takes any position: record, for each stream, the
    last position its sequence gave (everything it takes later is larger),
    idle, and announce it. Returns each stream's starting position."""
    starts: dict[str, int] = {}
    async with conn.transaction():
        for stream, sequence in sequences.items():
            starts[stream] = await conn.fetchval(
                f"""INSERT INTO stream_writers AS w (stream, instance, position, idle)
                    SELECT $1, $2, CASE WHEN is_called THEN last_value ELSE last_value - 1 END,
                           TRUE
                    FROM {sequence}
                    ON CONFLICT (stream, instance)
                    DO UPDATE SET position = GREATEST(w.position, EXCLUDED.position), idle = TRUE
                    RETURNING position""",
                stream,
                instance,
            )
        for payload in payloads:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    return starts


async def announce(
    db: asyncpg.Connection,
    instance: str,
    positions: dict[str, tuple[int, bool]],
    payloads: Sequence[str],
    *,
    durable: bool = False,
) -> None:
    """Record this writer's new (position, idle) per stream and notify them,
    in one statement (one transaction: whoever reads the table sees what was
    notified, and the notification is out when this returns).

    Most announcements need not wait for the WAL flush (4 ms of a 4.3 ms
    announcement on the development machine, all of it added to every
    wake-up in another process): what they record is already true of
    durable events, and a crash that loses one loses every session with it,
    after which each writer announces itself again. Only a writer leaving
    idle must be `durable`: readers that reconnect after a crash must not
    find it idle while it writes."""
    async with db.transaction():
        if not durable:
            await db.execute("SET LOCAL synchronous_commit = off")
        await _announce(db, instance, positions, payloads)


async def _announce(
    db: asyncpg.Connection,
    instance: str,
    positions: dict[str, tuple[int, bool]],
    payloads: Sequence[str],
) -> None:
    await db.execute(
        """WITH moved AS (
               INSERT INTO stream_writers AS w (stream, instance, position, idle)
               SELECT s, $1, p, i FROM unnest($2::text[], $3::bigint[], $4::bool[]) AS t(s, p, i)
               ON CONFLICT (stream, instance)
               DO UPDATE SET position = GREATEST(w.position, EXCLUDED.position),
                             idle = EXCLUDED.idle
           )
           SELECT pg_notify($5, payload) FROM unnest($6::text[]) AS payload""",
        instance,
        list(positions),
        [p for p, _ in positions.values()],
        [i for _, i in positions.values()],
        CHANNEL,
        list(payloads),
    )


async def say(conn: asyncpg.Connection, payload: str) -> None:
    """A notification that records nothing (a writer leaving)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


async def positions(
    db: asyncpg.Pool | asyncpg.Connection,
) -> list[tuple[str, str, int, bool, bool]]:
    """Every (stream, instance, position, idle, alive) recorded."""
    rows = await db.fetch(
        f"""SELECT stream, instance, position, idle,
                   {_ALIVE.format(key=_KEY.format("instance"), name="instance")} AS alive
            FROM stream_writers"""
    )
    return [(r["stream"], r["instance"], r["position"], r["idle"], r["alive"]) for r in rows]


async def alive(db: asyncpg.Pool | asyncpg.Connection, instances: Sequence[str]) -> set[str]:
    """Those of `instances` whose process holds its lock."""
    rows = await db.fetch(
        f"""SELECT i FROM unnest($1::text[]) AS i
            WHERE {_ALIVE.format(key=_KEY.format("i"), name="i")}""",
        list(instances),
    )
    return {r["i"] for r in rows}


async def holder(db: asyncpg.Pool | asyncpg.Connection, instance: str) -> int | None:
    """The server process id of the session holding the writer's lock, if
    any (for operators and tests: `pg_stat_activity` tells which client)."""
    return await db.fetchval(
        """SELECT l.pid FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND ((l.classid::bigint << 32) | l.objid::bigint)
                 = hashtextextended('stream-writer:' || $1, 0)""",
        instance,
    )
