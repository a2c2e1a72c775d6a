"""Other servers' signing keys, with the signed responses they came in."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import attrs


@attrs.frozen
class StoredServerKey:
    server_name: str
    key_id: str
    # Unpadded base64 of the ed25519 verify key.
    verify_key: str
    valid_until_ts: int
    from_server: str
    fetched_ts: int
    # The signed key response, exactly as received.
    key_json: str


class ServerKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def keys_of(self, server_names: Iterable[str]) -> list[StoredServerKey]:
        """Every stored key of the given servers (one query)."""
        rows = await self._pool.fetch(
            """SELECT server_name, key_id, verify_key, valid_until_ts, from_server,
                      fetched_ts, key_json
               FROM server_keys WHERE server_name = ANY($1)""",
            list(set(server_names)),
        )
        return [StoredServerKey(**dict(r)) for r in rows]

    async def store(self, keys: Iterable[StoredServerKey]) -> None:
        """Remember keys; a newer answer about a key replaces the older one."""
        rows = [attrs.astuple(k) for k in keys]
        if not rows:
            return
        await self._pool.executemany(
            """INSERT INTO server_keys (server_name, key_id, verify_key, valid_until_ts,
                                        from_server, fetched_ts, key_json)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (server_name, key_id) DO UPDATE
               SET verify_key = EXCLUDED.verify_key, valid_until_ts = EXCLUDED.valid_until_ts,
                   from_server = EXCLUDED.from_server, fetched_ts = EXCLUDED.fetched_ts,
                   key_json = EXCLUDED.key_json""",
            rows,
        )
