"""A duty done by one process at a time, taken over when that process dies.

Several processes of one deployment may be configured for a duty that must
run once (the background jobs, later a federation sender's shard). Each runs
a `LeasedDuty`: it asks for the duty's lease (storage/leases.py) every
`retry_s`; the one that gets it starts the duty and checks every `check_s`
that its holding session is still there. When the holder dies its session
ends, PostgreSQL frees the lock, and the next ask of another process wins:
the duty moves within `retry_s`. A holder that loses its session (the
database restarted, the network cut) stops the duty before asking again, so
two processes do not run it side by side for longer than one check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from storage import leases

logger = logging.getLogger(__name__)

# Defaults: how often a process asks for a free lease, and how often its
# holder checks that it still holds it.
RETRY_S = 2.0
CHECK_S = 2.0


class LeasedDuty:
    """Runs a duty (`start` then, once the lease is lost or at shutdown,
    `stop`) only while this process holds the lease `name`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        start: Callable[[], None],
        stop: Callable[[], Awaitable[None]],
        *,
        retry_s: float = RETRY_S,
        check_s: float = CHECK_S,
        give_way: Callable[[asyncpg.Connection], Awaitable[bool]] | None = None,
    ) -> None:
        """`give_way`: asked on the lease's connection before each ask and
        each check; while it says so, this process neither takes the lease
        nor keeps it (a federation sender shard left to its own worker)."""
        self._pool = pool
        self.name = name
        self._start = start
        self._stop = stop
        self._retry_s = retry_s
        self._check_s = check_s
        self._give_way = give_way
        self._task: asyncio.Task[None] | None = None
        # Set by `stop`: an error raised while the duty stops (which would
        # replace the cancellation) must not send the loop round again.
        self._stopping = False
        self.held = asyncio.Event()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the duty if it runs here and give the lease up."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._hold_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the session or the database went away
                if self._stopping:
                    return
                logger.warning("lease %s: %s; asking again in %.0f s", self.name, e, self._retry_s)
            await asyncio.sleep(self._retry_s)

    async def _hold_once(self) -> None:
        """Ask for the lease; if taken, run the duty while the holding session
        lives, and stop it when the session or this task ends. A process
        that only asks keeps no connection between two asks."""
        async with self._pool.acquire() as conn:
            if self._give_way is not None and await self._give_way(conn):
                return
            if not await leases.try_hold(conn, self.name):
                return
            logger.info("lease %s taken: starting its duty", self.name)
            self._start()
            self.held.set()
            try:
                while True:
                    await asyncio.sleep(self._check_s)
                    await leases.still_connected(conn, self._check_s)
                    if self._give_way is not None and await self._give_way(conn):
                        logger.info("lease %s: giving way", self.name)
                        return
            finally:
                self.held.clear()
                await self._stop()
                logger.info("lease %s given up: its duty stopped", self.name)
                # Best effort: a closed session holds nothing, and the pool
                # unlocks a connection's advisory locks when it takes it back.
                with contextlib.suppress(Exception):
                    if not conn.is_closed():
                        await leases.release(conn, self.name)
