"""Starting this process's background duties according to its roles.

Alone (no `--worker`), a process starts every duty at once, as it always
has. As a worker, it runs only the duties of its roles, each under its lease
(cluster/lease.py) among the workers sharing that role: one of them runs it,
and when that one dies another takes it over within the lease's retry
interval. The retention purge is leased even alone (two single processes on
one database must not purge side by side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from aiohttp import web

from homeserver.cluster.lease import LeasedDuty
from homeserver.cluster.roles import Duty, ProcessRoles
from storage import leases, stream_writers
from storage.database import create_pool

logger = logging.getLogger(__name__)

# Room in a worker's lease pool for the federation sender's shards.
_MAX_SHARDS = 16

Start = Callable[[], Awaitable[None] | None]
Stop = Callable[[], Awaitable[None]]


class DutyRunner:
    """Starts duties and stops them when their app stops."""

    def __init__(self, pool: asyncpg.Pool, roles: ProcessRoles, *, own_pool: bool) -> None:
        self._pool = pool
        self._own_pool = own_pool
        self._roles = roles
        # The leases of this process, by name (for its internal status).
        self.leases: dict[str, LeasedDuty] = {}

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, roles: ProcessRoles, dsn: str | None, session: str | None
    ) -> DutyRunner:
        """A process of a cluster (`session`: the name its sessions carry)
        holds each lease on a connection of its own, from a pool of its own:
        held leases must not starve the requests' pool. Its sessions carry
        its name, and one stays open while it lives: the other workers see
        it there (`give_way`)."""
        if session is None or dsn is None:
            return cls(pool, roles, own_pool=False)
        named = _with_query(dsn, "application_name", session)
        lease_pool = await create_pool(named, min_size=1, max_size=len(Duty) + _MAX_SHARDS)
        return cls(lease_pool, roles, own_pool=True)

    async def close(self, _: web.Application) -> None:
        """After every duty stopped (the last cleanup of the client app)."""
        if self._own_pool:
            await self._pool.close()

    async def run(
        self,
        app: web.Application,
        duty: Duty,
        start: Start,
        stop: Stop,
        *,
        always_leased: bool = False,
        lease: str | None = None,
        defer_to: str | None = None,
    ) -> None:
        """Start `duty` here if this process has its role: at once when the
        process is alone (unless `always_leased`), else while it holds the
        lease (named `lease`, by default the duty's name) and, if the duty
        is another worker's own (`defer_to`), while that worker is not
        connected to the database."""
        if not self._roles.runs(duty):
            logger.info("%s: not a duty of this worker's roles", duty.value)
            return
        if self._roles.worker is None and not always_leased:
            started = start()
            if started is not None:
                await started

            async def stop_now(_: web.Application) -> None:
                await stop()

            app.on_cleanup.append(stop_now)
            return
        leased = _lease(self._pool, lease or duty.value, start, stop, defer_to)
        self.leases[leased.name] = leased
        leased.start()

        async def give_up(_: web.Application) -> None:
            await leased.stop()

        app.on_cleanup.append(give_up)

    def held(self) -> list[str]:
        """The duties this process holds now."""
        return sorted(name for name, lease in self.leases.items() if lease.held.is_set())


def session_name(worker: str) -> str:
    """The application_name of a worker's lease sessions: the one its other
    sessions have too (storage/stream_writers.py), so that any of them tells
    that the worker is alive."""
    return stream_writers.application_name(worker)


def _with_query(dsn: str, key: str, value: str) -> str:
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != key] + [(key, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _lease(
    pool: asyncpg.Pool, name: str, start: Start, stop: Stop, defer_to: str | None
) -> LeasedDuty:
    """A LeasedDuty for a start that may be a coroutine: it runs as a task
    that the stop waits for first."""
    starting: list[asyncio.Task[None]] = []

    def begin() -> None:
        result = start()
        if result is not None:
            starting.append(asyncio.ensure_future(result))

    async def end() -> None:
        while starting:
            task = starting.pop()
            with contextlib.suppress(Exception):
                await task
        await stop()

    give_way = None
    if defer_to is not None:
        owner = session_name(defer_to)

        async def give_way(conn: asyncpg.Connection) -> bool:
            return await leases.worker_connected(conn, owner)

    return LeasedDuty(pool, name, begin, end, give_way=give_way)
