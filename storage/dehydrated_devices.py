"""Which device of a user is their dehydrated one (MSC3814), and its data."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class DehydratedDevice:
    device_id: str
    # The client's device_data object, as canonical JSON text.
    device_data_json: str


class DehydratedDeviceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, user_id: str) -> DehydratedDevice | None:
        row = await self._pool.fetchrow(
            "SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1", user_id
        )
        return DehydratedDevice(row["device_id"], row["device_data"]) if row else None

    async def put(self, user_id: str, device_id: str, device_data_json: str) -> None:
        await self._pool.execute(
            """INSERT INTO dehydrated_devices (user_id, device_id, device_data)
               VALUES ($1, $2, $3)
               ON CONFLICT (user_id) DO UPDATE
               SET device_id = EXCLUDED.device_id, device_data = EXCLUDED.device_data""",
            user_id,
            device_id,
            device_data_json,
        )

    async def delete(self, user_id: str, device_id: str) -> bool:
        """Forget the user's dehydrated device if it is still `device_id`."""
        return (
            await self._pool.execute(
                "DELETE FROM dehydrated_devices WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
            )
            != "DELETE 0"
        )
