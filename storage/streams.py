"""Stream positions that readers can trust.

Positions come from a PostgreSQL sequence, but transactions commit out of
order: a reader that saw position 7 committed while 6 was still in flight
would skip 6 for ever. So positions are handed out in order by one process,
which also tracks which are still in flight, and readers only see up to the
highest position below which everything has committed.
"""

from __future__ import annotations

import asyncio

import asyncpg

_BLOCK = 100


class StreamIds:
    def __init__(self, pool: asyncpg.Pool, sequence: str) -> None:
        self._pool = pool
        self._sequence = sequence
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()
        self._in_flight: set[int] = set()
        self._done_above: set[int] = set()
        self.current = 0

    async def start(self) -> None:
        """Read the last position used, so that `current` starts there."""
        self.current = await self._pool.fetchval(
            f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {self._sequence}"
        )

    async def allocate(self, conn: asyncpg.Connection | None = None) -> int:
        """Take the next position; it is in flight until `finish` is called.

        A caller that holds a pool connection passes it: asking the pool for
        a second one could wait for ever when every connection is held by
        callers doing the same.
        """
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    first = await (conn or self._pool).fetchval(
                        f"SELECT setval('{self._sequence}', nextval('{self._sequence}') + $1 - 1)",
                        _BLOCK,
                    )
                    self._next, self._end = first - _BLOCK + 1, first + 1
        position = self._next
        self._next += 1
        self._in_flight.add(position)
        return position

    def finish(self, position: int) -> bool:
        """Mark a position committed (or abandoned); True if `current` moved."""
        self._in_flight.discard(position)
        self._done_above.add(position)
        lowest_in_flight = min(self._in_flight, default=None)
        before = self.current
        for done in sorted(self._done_above):
            if lowest_in_flight is not None and done > lowest_in_flight:
                break
            self.current = max(self.current, done)
            self._done_above.discard(done)
        return self.current != before


async def next_position(db: asyncpg.Pool | asyncpg.Connection, sequence: str) -> int:
    """One position of `sequence` (a writer among several takes them one at a
    time: homeserver/cluster/stream_ids.py)."""
    return await db.fetchval(f"SELECT nextval('{sequence}')")
