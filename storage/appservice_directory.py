"""The rooms application services published in their networks' directories."""

from __future__ import annotations

import asyncpg


class AppServiceDirectoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def room_exists(self, room_id: str) -> bool:
        found = await self._pool.fetchval("SELECT 1 FROM rooms WHERE room_id = $1", room_id)
        return found is not None

    async def publish(self, appservice_id: str, network_id: str, room_id: str) -> None:
        await self._pool.execute(
            """INSERT INTO appservice_room_list (appservice_id, network_id, room_id)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            appservice_id,
            network_id,
            room_id,
        )

    async def unpublish(self, appservice_id: str, network_id: str, room_id: str) -> None:
        await self._pool.execute(
            """DELETE FROM appservice_room_list
               WHERE appservice_id = $1 AND network_id = $2 AND room_id = $3""",
            appservice_id,
            network_id,
            room_id,
        )
