"""The identity servers each user's third-party identifiers are bound on."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class Binding:
    medium: str
    address: str
    id_server: str


class ThreepidBindingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, user_id: str, medium: str, address: str, id_server: str) -> None:
        await self._pool.execute(
            """INSERT INTO threepid_bindings (user_id, medium, address, id_server)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            user_id,
            medium,
            address,
            id_server,
        )

    async def id_servers(self, user_id: str, medium: str, address: str) -> list[str]:
        rows = await self._pool.fetch(
            """SELECT id_server FROM threepid_bindings
               WHERE user_id = $1 AND medium = $2 AND address = $3 ORDER BY id_server""",
            user_id,
            medium,
            address,
        )
        return [row["id_server"] for row in rows]

    async def for_user(self, user_id: str) -> list[Binding]:
        rows = await self._pool.fetch(
            """SELECT medium, address, id_server FROM threepid_bindings
               WHERE user_id = $1 ORDER BY medium, address, id_server""",
            user_id,
        )
        return [Binding(row["medium"], row["address"], row["id_server"]) for row in rows]

    async def remove(self, user_id: str, medium: str, address: str, id_server: str) -> None:
        await self._pool.execute(
            """DELETE FROM threepid_bindings
               WHERE user_id = $1 AND medium = $2 AND address = $3 AND id_server = $4""",
            user_id,
            medium,
            address,
            id_server,
        )
