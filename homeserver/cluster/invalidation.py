"""In-process caches kept true across the processes of a deployment.

Every process caches what it reads on hot paths (access tokens, push rules,
who has no pusher, ...). A write made by one process can make another's
entry stale, so the writer names what changed, a (cache, key) pair, once its
write committed, and every other process forgets that entry.

The transport is PostgreSQL itself: `NOTIFY` on one channel, heard through
one `LISTEN` connection per process. Notifications are not stored, so a
process that lost its listening connection may have missed some: when it
has one again it empties every shared cache, which is always safe, before
trusting them. Between a commit and the notification's arrival (a
round trip, milliseconds) another process may still serve the old entry,
as a single process does between its commit and its own invalidation.

A single process has no transport: `forget` then only clears its own
caches, exactly as before there was a deployment of several.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import attrs

from storage import leases, shared_caches

logger = logging.getLogger(__name__)

CHANNEL = "homeserver_cache_invalidation"
# How often the listening connection is checked, and how long to wait
# before listening again once it was lost.
CHECK_S = 5.0
RETRY_S = 1.0
# NOTIFY payloads are limited to 8,000 bytes; keys are ids, far shorter.
_MAX_PAYLOAD = 7_900


@attrs.frozen
class _SharedCache:
    forget: Callable[[str], None]
    forget_all: Callable[[], None]


class CacheInvalidations:
    """The named caches of this process, and the channel between processes."""

    def __init__(self) -> None:
        self._caches: dict[str, _SharedCache] = {}
        # Tells this process's own notifications apart from the others'.
        self.instance = uuid.uuid4().hex
        self._pool: asyncpg.Pool | None = None
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Future[None]] = set()
        # Set while a listening connection is up (tests and start-up wait on it).
        self.listening = asyncio.Event()
        # The PostgreSQL backend pid of that connection while it is up (for
        # operators and tests: pg_stat_activity tells which session listens).
        self.listening_pid: int | None = None

    def register(
        self, cache: str, forget: Callable[[str], None], forget_all: Callable[[], None]
    ) -> None:
        """`forget(key)` drops one entry; `forget_all()` empties the cache."""
        if cache in self._caches:
            raise ValueError(f"cache {cache!r} registered twice")
        self._caches[cache] = _SharedCache(forget, forget_all)

    def register_mirror(
        self,
        cache: str,
        reload_one: Callable[[str], Awaitable[None]],
        reload_all: Callable[[], Awaitable[None]],
    ) -> None:
        """For an in-memory mirror of a table (rate limit overrides, rooms'
        retention policies), where a missing entry means "none" and so
        cannot just be dropped: another process's change reloads the entry,
        in a task of its own. The writing process updates its own mirror and
        calls `tell_others`."""
        self.register(
            cache, lambda key: self._spawn(reload_one(key)), lambda: self._spawn(reload_all())
        )

    def forget(self, cache: str, key: str) -> None:
        """An entry of `cache` changed in the database: drop it here and, in a
        deployment, in every other process. Call it after the write commits
        (a process that reads in between would cache the old value again)."""
        self._caches[cache].forget(key)
        self.tell_others(cache, key)

    def tell_others(self, cache: str, key: str) -> None:
        """Like `forget`, for the other processes only."""
        if cache not in self._caches:
            raise KeyError(cache)
        if self._pool is not None:
            self._outbox.put_nowait((cache, key))

    def _spawn(self, reload: Awaitable[None]) -> None:
        task = asyncio.ensure_future(reload)
        self._reloads.add(task)
        task.add_done_callback(self._reloaded)

    def _reloaded(self, task: asyncio.Future[None]) -> None:
        self._reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reloading a shared cache failed", exc_info=task.exception())

    async def start(self, pool: asyncpg.Pool) -> None:
        """Share invalidations with the other processes on this database."""
        self._pool = pool
        self._tasks = [
            asyncio.create_task(self._listen(pool)),
            asyncio.create_task(self._send(pool)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._pool = None

    # --- sending ----------------------------------------------------------

    async def _send(self, pool: asyncpg.Pool) -> None:
        """Sends what is queued, everything queued at once in one statement."""
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            payloads = [self._payload(cache, key) for cache, key in dict.fromkeys(batch)]
            try:
                await shared_caches.notify(pool, CHANNEL, payloads)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # The others cannot be told: what they cached may be stale
                # until they lose their own connection or evict the entry.
                # Nothing better is possible with the database unreachable.
                logger.warning("cache invalidations not sent: %s", e)

    def _payload(self, cache: str, key: str) -> str:
        payload = json.dumps([self.instance, cache, key], separators=(",", ":"))
        if len(payload.encode()) > _MAX_PAYLOAD:
            # Too long to name: the whole cache goes.
            payload = json.dumps([self.instance, cache, None], separators=(",", ":"))
        return payload

    # --- hearing ------------------------------------------------------------

    async def _listen(self, pool: asyncpg.Pool) -> None:
        """Holds a listening connection; each (re)connection starts by
        forgetting everything, since notifications may have been missed."""
        while True:
            try:
                async with pool.acquire() as conn:
                    await conn.add_listener(CHANNEL, self._heard)
                    try:
                        self._forget_everything()
                        self.listening_pid = conn.get_server_pid()
                        self.listening.set()
                        while True:
                            await asyncio.sleep(CHECK_S)
                            await leases.still_connected(conn, CHECK_S)
                    finally:
                        self.listening.clear()
                        self.listening_pid = None
                        with contextlib.suppress(Exception):
                            if not conn.is_closed():
                                await conn.remove_listener(CHANNEL, self._heard)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.warning("cache invalidation channel lost: %s; listening again", e)
            # Whatever arrives until the next connection is missed.
            await asyncio.sleep(RETRY_S)

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            instance, cache, key = json.loads(payload)
        except ValueError:
            logger.warning("unreadable cache invalidation %r", payload[:200])
            return
        if instance == self.instance:
            return
        shared = self._caches.get(cache)
        if shared is None:
            # A newer version of the server, with a cache this one lacks.
            return
        if key is None:
            shared.forget_all()
        else:
            shared.forget(key)

    def _forget_everything(self) -> None:
        for shared in self._caches.values():
            shared.forget_all()
