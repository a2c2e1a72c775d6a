"""Leases: a named duty that one process of a deployment performs at a time.

A lease is a PostgreSQL session advisory lock, held on a connection its
holder keeps open: when the holder dies, PostgreSQL ends its session and the
lock is free at once, with no expiry to wait for and no clock to trust. The
keys are a hash of the lease's name in a space of their own ("lease:"), apart
from the transaction locks that serialise a room's writers.
"""

from __future__ import annotations

import asyncpg

_KEY = "hashtextextended('lease:' || $1, 0)"


async def try_hold(conn: asyncpg.Connection, name: str) -> bool:
    """Take the lease on `conn` if no other session holds it (never waits)."""
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({_KEY})", name))


async def release(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({_KEY})", name)


async def still_connected(conn: asyncpg.Connection, timeout_s: float) -> None:
    """A round trip on the holding session: raises if it is gone."""
    await conn.fetchval("SELECT 1", timeout=timeout_s)


async def holder(db: asyncpg.Pool | asyncpg.Connection, name: str) -> int | None:
    """The server process id of the session holding the lease, if any (for
    operators and tests: `pg_stat_activity` tells which client that is)."""
    return await db.fetchval(
        f"""SELECT l.pid FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.database =
                  (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.objsubid = 1
              AND ((l.classid::bigint << 32) | l.objid::bigint) = {_KEY}""",
        name,
    )


async def held(db: asyncpg.Pool | asyncpg.Connection, names: list[str]) -> set[str]:
    """Which of the leases `names` some session holds now, in one query."""
    rows = await db.fetch(
        """SELECT n.name FROM unnest($1::text[]) AS n(name)
           WHERE EXISTS (
               SELECT 1 FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                 AND l.database =
                     (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND ((l.classid::bigint << 32) | l.objid::bigint)
                     = hashtextextended('lease:' || n.name, 0))""",
        names,
    )
    return {r["name"] for r in rows}


async def worker_connected(conn: asyncpg.Connection, application_name: str) -> bool:
    """Whether a session named `application_name` is open on this database
    (a worker of the deployment, which names its lease connections so)."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                              WHERE datname = current_database() AND application_name = $1)""",
            application_name,
        )
    )
