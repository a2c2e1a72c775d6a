"""Stream positions one process of a cluster takes, next to other writers.

Unlike storage/streams.py's blocks, positions are taken one at a time with
`nextval`: a process holding an unused block would keep every position below
its block's end from readers, while others publish above it. This process
tracks its own in-flight positions; `current` is how far it has persisted
(everything it took up to there is committed or abandoned), which the
cluster notifier announces to the other processes. A reader advances to the
least such position over every live writer.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg

from storage import streams


class Hub(Protocol):
    def start_position(self, stream: str) -> int: ...

    def track(self, stream: str, ids: ClusterStreamIds) -> None: ...

    async def busy(self, stream: str) -> None: ...


class ClusterStreamIds:
    """The interface of storage/streams.py's StreamIds, for cluster mode."""

    def __init__(self, pool: asyncpg.Pool, stream: str, sequence: str, hub: Hub) -> None:
        self._pool = pool
        self._stream = stream
        self._sequence = sequence
        self._hub = hub
        self._in_flight: set[int] = set()
        # nextval calls sent but not answered: their positions may be below
        # ones already committed (PostgreSQL may have run them first).
        self._allocating = 0
        self._highest = 0
        self.current = 0

    async def start(self) -> None:
        """Start where the cluster notifier registered this writer."""
        self.current = self._highest = self._hub.start_position(self._stream)
        self._hub.track(self._stream, self)

    def idle(self) -> bool:
        """Nothing in flight nor being taken: every position this process
        takes from now on is above whatever another writer announced."""
        return not self._in_flight and not self._allocating

    async def allocate(self, conn: asyncpg.Connection | None = None) -> int:
        """The next position; in flight until `finish`. A caller holding a
        pool connection passes it (see StreamIds.allocate)."""
        self._allocating += 1
        try:
            await self._hub.busy(self._stream)
            position = await streams.next_position(conn or self._pool, self._sequence)
        finally:
            self._allocating -= 1
        self._in_flight.add(position)
        self._highest = max(self._highest, position)
        return position

    def finish(self, position: int) -> bool:
        """Mark a position committed (or abandoned); True if `current` moved."""
        self._in_flight.discard(position)
        if self._allocating:
            # An unanswered nextval may yet return a position below this one;
            # the finish of that position moves `current`.
            return False
        settled = min(self._in_flight) - 1 if self._in_flight else self._highest
        if settled <= self.current:
            return False
        self.current = settled
        return True
