"""The PostgreSQL connection pool, the embedded server and the migration runner."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works: it only has to be the same in every process.
_MIGRATION_LOCK_KEY = 0x6D78_6873


class SchemaTooNewError(Exception):
    """The database was migrated by a newer server than this one."""


def now_ms() -> int:
    return int(time.time() * 1000)


def migrations(schema_dir: Path = SCHEMA_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(schema_dir.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"schema file {path.name} does not match NNNN_name.sql")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two schema files share a version number")
    return found


async def migrate(conn: asyncpg.Connection, schema_dir: Path = SCHEMA_DIR) -> list[int]:
    """Apply pending migrations, each in its own transaction; return those applied.

    An advisory lock makes concurrent starts of several processes safe.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                   version INTEGER PRIMARY KEY,
                   name TEXT NOT NULL,
                   applied_ts BIGINT NOT NULL)"""
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_version")}
        known = migrations(schema_dir)
        newest_known = max((v for v, _ in known), default=0)
        if applied and max(applied) > newest_known:
            raise SchemaTooNewError(
                f"the database is at schema version {max(applied)}, but this server "
                f"only knows up to {newest_known}: upgrade the server"
            )
        done = []
        for version, path in known:
            if version in applied:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_ts) VALUES ($1, $2, $3)",
                    version,
                    path.name,
                    now_ms(),
                )
            logger.info("applied schema migration %s", path.name)
            done.append(version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB columns come back as text; callers decode what they need.
    await conn.execute("SET TIME ZONE 'UTC'")


class _Connection(asyncpg.Connection):
    """A connection returned to the pool without asyncpg's reset query.

    That query (unlock advisory locks, close cursors, unlisten, reset
    settings) costs a round trip on every release, and this server keeps no
    session state: locks are transaction-scoped (the migration lock is
    released explicitly), and open transactions are still rolled back.
    """

    def get_reset_query(self) -> str:
        return ""


class DatabaseUnavailableError(Exception):
    """PostgreSQL cannot be reached: stopped, restarting or refusing connections."""


# Errors of a connection PostgreSQL closed or refused: the server is going
# away, restarting or full, not a fault of the query.
_UNAVAILABLE = (
    DatabaseUnavailableError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from or while handling)
    means PostgreSQL is unreachable for now, so a retry later may succeed.

    A transaction interrupted by a restart fails leaving its block with
    "the underlying connection is closed", the connection error as its context.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, _UNAVAILABLE):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and re.search(r"\bclos(ed|ing)\b", str(seen)):
            return True
        # A pooled connection whose server went away while its last query
        # was failing: asyncpg finds it still consuming that error.
        if isinstance(seen, asyncpg.InternalClientError) and "in progress" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg's connect, with failures to reach the server as DatabaseUnavailableError
    (a missing socket or a refused connection is otherwise a bare OSError)."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except (OSError, *_UNAVAILABLE) as e:
        raise DatabaseUnavailableError(f"cannot connect to PostgreSQL: {e}") from e


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, application_name: str | None = None
) -> asyncpg.Pool:
    """The pool; its sessions named `application_name` (in pg_stat_activity)."""
    settings = {"application_name": application_name} if application_name else None
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        connection_class=_Connection,
        connect=_connect,
        server_settings=settings,
    )
    return pool


class EmbeddedPostgres:
    """A PostgreSQL server in the data directory, for users who configure none.

    pgserver ships the PostgreSQL binaries in a wheel, so nothing has to be
    installed on the machine; the server is stopped when this process exits.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; blocking, so call it before the loop is busy."""
        import pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        return self._server.get_uri()

    def create_database(self, name: str) -> str:
        """Create database `name` if missing and return its DSN."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self._server.get_uri(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
