"""What a store needs to keep its in-process cache true in a deployment of
several processes: the invalidation channel of homeserver/cluster/
invalidation.py, seen from below (storage imports nothing of the services);
and that channel's one statement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import asyncpg


class SharedCaches(Protocol):
    def register(
        self, cache: str, forget: Callable[[str], None], forget_all: Callable[[], None]
    ) -> None: ...

    def forget(self, cache: str, key: str) -> None: ...

    def tell_others(self, cache: str, key: str) -> None: ...


async def notify(pool: asyncpg.Pool, channel: str, payloads: list[str]) -> None:
    """Send these notifications on `channel`, in one statement."""
    await pool.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", channel, payloads)
