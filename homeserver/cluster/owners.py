"""Which event persister owns a room now.

Every event persister holds a liveness lease named after it for as long as
it runs (cluster/lease.py: a PostgreSQL session lock, free the moment its
process dies). Each process reads which persisters hold theirs, every
`REFRESH_S` and at once when a forward fails, and a room's owner is the
rendezvous-hash winner (cluster/roles.py `owner_of`) among the live ones: a
dead persister's rooms spread over the others, and come back to it when it
returns, while every other room stays where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
import attrs
from aiohttp import web

from homeserver.cluster.forwarding import RoomWriteForwarder
from homeserver.cluster.lease import LeasedDuty
from homeserver.cluster.roles import ProcessRoles, Role, WorkerSpec, owner_of, workers_with
from homeserver.cluster.write_ops import OPERATIONS, LocalWrites
from homeserver.rooms.pipeline import EventPipeline
from storage import leases

logger = logging.getLogger(__name__)

REFRESH_S = 1.0


def liveness_lease(worker: str) -> str:
    return f"event-persister:{worker}"


class PersisterOwners:
    """cluster/forwarding.py's RoomOwners over the configured persisters."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        persisters: Sequence[str],
        addresses: Mapping[str, str],
        me: str | None,
    ) -> None:
        self._pool = pool
        self._persisters = sorted(persisters)
        self._addresses = addresses
        self._me = me
        # Until the first look, every configured persister counts as up.
        self._live: list[str] = list(self._persisters)
        self._refreshed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lease: LeasedDuty | None = None

    async def start(self) -> None:
        if self._me in self._persisters:
            assert self._me is not None
            self._lease = LeasedDuty(
                self._pool, liveness_lease(self._me), lambda: None, _nothing_to_stop
            )
            self._lease.start()
            await self._lease.held.wait()
        await self.refresh()
        self._task = asyncio.create_task(self._keep_refreshing())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._lease is not None:
            await self._lease.stop()
            self._lease = None

    def owner(self, room_id: str) -> str | None:
        live = self._live or self._persisters
        owner = owner_of(room_id, live)
        return None if owner == self._me else owner

    def address(self, worker: str) -> str:
        return self._addresses[worker]

    def live(self) -> list[str]:
        """The persisters this process last saw up (in the internal status:
        a deployment is ready once every process sees every persister)."""
        return list(self._live)

    def unreachable(self, worker: str) -> None:
        if worker in self._live and worker != self._me:
            self._live = [w for w in self._live if w != worker]

    async def refresh(self) -> None:
        held = await leases.held(self._pool, [liveness_lease(w) for w in self._persisters])
        live = [w for w in self._persisters if liveness_lease(w) in held]
        if live != self._live:
            logger.info("event persisters up: %s", ", ".join(live) or "none")
        self._live = live

    async def _keep_refreshing(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.warning("cannot tell which event persisters are up: %s", e)


async def _nothing_to_stop() -> None:
    return None


@attrs.frozen
class RoomWriteRouting:
    """A worker's room writes as its internal API serves them."""

    owners: PersisterOwners
    # An event persister's pipeline methods, by operation (else None).
    local_writes: LocalWrites | None


async def route_room_writes(
    app: web.Application,
    pipeline: EventPipeline,
    pool: asyncpg.Pool,
    *,
    workers: Mapping[str, WorkerSpec],
    roles: ProcessRoles,
    secret: str | None,
) -> RoomWriteRouting | None:
    """In a worker, make the pipeline's room writes (cluster/write_ops.py)
    run at the room's owner (cluster/forwarding.py), and return who is up
    and, if this worker is an event persister, the local methods the
    internal API runs forwarded writes with. Alone, nothing changes and
    there is no internal API."""
    if roles.worker is None:
        return None
    assert secret is not None  # the config requires it with workers
    owners = PersisterOwners(
        pool,
        persisters=workers_with(workers, Role.EVENT_PERSISTER),
        addresses={name: w.internal_listen or "" for name, w in workers.items()},
        me=roles.worker if roles.has(Role.EVENT_PERSISTER) else None,
    )
    await owners.start()
    forwarder = RoomWriteForwarder(owners, secret=secret)
    local: dict[str, Callable[..., Awaitable[Any]]] = {}
    # The facade's entry points: every service that writes a room goes
    # through them (create_room through commit_create).
    for name, op in OPERATIONS.items():
        local[name] = getattr(pipeline, name)
        setattr(pipeline, name, forwarder.route(op, local[name]))

    async def stop(_: web.Application) -> None:
        await forwarder.close()
        await owners.stop()

    app.on_cleanup.append(stop)
    return RoomWriteRouting(owners, local if roles.has(Role.EVENT_PERSISTER) else None)
