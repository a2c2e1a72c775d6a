"""Writes that finish even when their client hangs up.

The client listener cancels a request's handler when its client disconnects
(aiohttp's `handler_cancellation`), so that reads, long polls and remote
lookups nobody waits for any more stop at once. A write must not stop half
way: a createRoom with half its events, an event committed whose stream
position was never advanced. Handlers that change something therefore run
as tasks of their own, shielded from the request's cancellation; what one
of them does is bounded by the request limits, so it ends soon anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from homeserver.errors import MatrixError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The event loop keeps only weak references to tasks: a shielded write whose
# request was cancelled lives here until it is done.
_running: set[asyncio.Task[Any]] = set()
# Those of them whose request was cancelled: nobody else reports how they end.
_orphaned: set[asyncio.Task[Any]] = set()


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task not in _orphaned:
        return  # its request reports the outcome
    _orphaned.discard(task)
    error = None if task.cancelled() else task.exception()
    if error is None or isinstance(error, MatrixError):
        return
    if isinstance(error, OSError):
        # Typically the rest of the body of a client that hung up.
        logger.info("a write whose client had left stopped: %s", error)
    else:
        logger.error("a write whose client had left failed", exc_info=error)


async def run_to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`; if the caller is cancelled, `work` still runs to its end."""
    task = asyncio.ensure_future(work)
    _running.add(task)
    task.add_done_callback(_finished)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            _orphaned.add(task)
            logger.info("client left during a write; it continues without them")
        raise


# How long a shutdown waits for such writes before it goes on without them.
DRAIN_TIMEOUT_S = 10.0


async def drain_writes(timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Wait for the writes still running for clients that left (at shutdown)."""
    if _running:
        _, late = await asyncio.wait(list(_running), timeout=timeout_s)
        if late:
            logger.warning("shutting down with %d writes unfinished", len(late))
