"""What lands in the database: hashed secrets, and the migration runner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import pytest

from storage.database import SchemaTooNewError, migrate, migrations


async def test_passwords_are_bcrypt_and_tokens_are_not_stored(hs):
    reg = await hs.register("tess", "correct horse", refresh_token=True)
    row = await hs.pool.fetchrow(
        "SELECT password_hash FROM users WHERE user_id = '@tess:localhost'"
    )
    assert row["password_hash"].startswith("$2b$")
    assert "correct horse" not in row["password_hash"]

    access, refresh = reg["access_token"], reg["refresh_token"]
    for table in ("access_tokens", "refresh_tokens"):
        rows = await hs.pool.fetch(f"SELECT * FROM {table}")
        assert rows
        for r in rows:
            flat = " ".join(str(v) for v in r.values())
            assert access not in flat and refresh not in flat
    hashes = {r["token_hash"] for r in await hs.pool.fetch("SELECT token_hash FROM access_tokens")}
    assert hashlib.sha256(access.encode()).digest() in hashes


async def test_migrations_are_applied_once_in_order(database):
    conn = await asyncpg.connect(database)
    try:
        versions = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        ]
        assert versions == [v for v, _ in migrations()]
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_new_migrations_apply_and_newer_database_is_refused(database, tmp_path: Path):
    schema = tmp_path / "schema"
    schema.mkdir()
    for _, path in migrations():
        (schema / path.name).write_text(path.read_text())
    newest = max(v for v, _ in migrations())
    (schema / f"{newest + 1:04d}_extra.sql").write_text("CREATE TABLE extra (x INT);")
    conn = await asyncpg.connect(database)
    try:
        assert await migrate(conn, schema) == [newest + 1]
        assert await conn.fetchval("SELECT count(*) FROM extra") == 0
        # A server that does not know migration newest+1 refuses this database.
        with pytest.raises(SchemaTooNewError):
            await migrate(conn)
    finally:
        await conn.close()


async def test_failed_migration_changes_nothing(database, tmp_path: Path):
    schema = tmp_path / "schema"
    schema.mkdir()
    for _, path in migrations():
        (schema / path.name).write_text(path.read_text())
    newest = max(v for v, _ in migrations())
    (schema / f"{newest + 1:04d}_broken.sql").write_text(
        "CREATE TABLE half (x INT); SELECT nonsense;"
    )
    conn = await asyncpg.connect(database)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate(conn, schema)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_version") == newest
    finally:
        await conn.close()
