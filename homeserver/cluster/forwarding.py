"""Room writes go to the room's owner, whichever process received them.

In a deployment each room is owned by one event persister (cluster/roles.py
`owner_of`: rendezvous hashing of the room id over the persisters that are
up), so that one process writes a room and keeps its caches warm. Every
entry point of the event pipeline that moves a room's head or stream
(cluster/write_ops.py: local sends, a new room's create event, events
received over federation or by backfill, remote users' joins, local users'
joins to other servers' rooms, out-of-band invites and rejections) is
wrapped here: a process that does not own the room hands the call to the
owner over the internal API (api/internal.py: shared secret, internal
listener only) and returns the owner's answer, errors included. The owner
runs its own pipeline method and never forwards again. A send's
transaction id travels with it and is checked by the owner under the room's
lock, so a retried request is answered with the first event wherever it
lands. A new room's create event is built and signed where the request
arrives and forwarded whole (`commit_create`): from room 12 its hash is
the room id, so the owner is known only once it exists, and the owner
stores exactly the event whose hash chose it rather than rebuilding one.

Not forwarded: `store_outliers` (auth events and state without a stream
position: no room head moves, see write_ops.py), and the reads and
rehearsals of the pipeline (`build_local`, `rehearse_new_room`,
`new_room_id`).

Ownership is a preference, not what keeps a room consistent: every write
takes the room's PostgreSQL advisory lock and reads the room's head under
it, so two processes writing one room at a handover (an owner that died and
one taking over) serialise in the database.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

import aiohttp

from homeserver.cluster.write_ops import WriteOp
from homeserver.errors import MatrixError

logger = logging.getLogger(__name__)

INTERNAL_PREFIX = "/_homeserver/internal/v1"
# How long a forwarded write may wait for a room's owner (one that died is
# replaced within the persisters' liveness check).
OWNER_WAIT_S = 15.0
_RETRY_S = 0.25

P = ParamSpec("P")
R = TypeVar("R")


class RoomOwners(Protocol):
    def owner(self, room_id: str) -> str | None:
        """The worker that owns the room now; None: this process."""

    def address(self, worker: str) -> str:
        """Where the worker's internal API listens ("host:port")."""

    def unreachable(self, worker: str) -> None:
        """A forward to the worker failed to connect: look at who is up again."""


class RoomWriteForwarder:
    """The pipeline's room writes as the deployment sees them: here when
    this process owns the room, at the owner otherwise."""

    def __init__(self, owners: RoomOwners, *, secret: str) -> None:
        self._owners = owners
        self._secret = secret
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def route(self, op: WriteOp, local: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """`local` (a pipeline method) where the room's owner runs it."""
        signature = inspect.signature(local)
        assert list(signature.parameters) == list(op.params), op.name

        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return await self._run(op, local, bound.arguments)

        return call

    async def _run(
        self, op: WriteOp, local: Callable[..., Awaitable[R]], args: dict[str, Any]
    ) -> R:
        room_id = op.room_of(args)
        deadline = time.monotonic() + OWNER_WAIT_S
        while True:
            owner = self._owners.owner(room_id)
            if owner is None:
                return await local(**args)
            try:
                result: R = await self._forward(owner, op, args)
                return result
            except aiohttp.ClientConnectionError as e:
                # Dead or restarting: once it is known down another owns the
                # room. The call did not reach it, or reached it and its
                # answer was lost: a send's transaction id makes a retry
                # safe, and the other writes find their event stored.
                if time.monotonic() >= deadline:
                    raise MatrixError(
                        503, "M_UNKNOWN", "The room's writer cannot be reached; try again"
                    ) from e
                logger.warning("room %s: owner %s unreachable (%s); retrying", room_id, owner, e)
                self._owners.unreachable(owner)
                await asyncio.sleep(_RETRY_S)

    async def _forward(self, owner: str, op: WriteOp, args: Mapping[str, Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"http://{self._owners.address(owner)}{INTERNAL_PREFIX}/room_write/{op.name}"
        async with self._session.post(
            url,
            json=op.args_to_json(args),
            headers={"Authorization": f"Bearer {self._secret}"},
            timeout=aiohttp.ClientTimeout(total=op.timeout_s),
        ) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
        if not isinstance(answer, dict):
            raise MatrixError(502, "M_UNKNOWN", f"The room's writer answered {response.status}")
        if response.status != 200:
            raise MatrixError(
                response.status,
                answer.get("errcode", "M_UNKNOWN"),
                answer.get("error", "The room's writer refused the write"),
                **{k: v for k, v in answer.items() if k not in ("errcode", "error")},
            )
        try:
            return op.result.decode(answer.get("result"), "the owner's answer")
        except MatrixError as e:
            raise MatrixError(502, "M_UNKNOWN", e.message) from None
