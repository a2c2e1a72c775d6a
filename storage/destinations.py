"""How reachable each remote server has been: the outbound backoff state."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class DestinationRetry:
    destination: str
    # When the current run of failures started; None when the server is up.
    failure_ts: int | None
    retry_last_ts: int
    retry_interval_ms: int


class DestinationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, destination: str) -> DestinationRetry | None:
        row = await self._pool.fetchrow(
            """SELECT destination, failure_ts, retry_last_ts, retry_interval_ms
               FROM federation_destinations WHERE destination = $1""",
            destination,
        )
        return DestinationRetry(**dict(row)) if row is not None else None

    async def set(self, retry: DestinationRetry) -> None:
        await self._pool.execute(
            """INSERT INTO federation_destinations
                   (destination, failure_ts, retry_last_ts, retry_interval_ms)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (destination) DO UPDATE
               SET failure_ts = EXCLUDED.failure_ts, retry_last_ts = EXCLUDED.retry_last_ts,
                   retry_interval_ms = EXCLUDED.retry_interval_ms""",
            *attrs.astuple(retry),
        )
