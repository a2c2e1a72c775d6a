"""Remote users' device lists and cross-signing keys, cached for /keys/query,
and the m.device_list_update position of our own users for other servers.

Key objects are JSON text as the remote sent them (TEXT: never reordered).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg
import attrs


@attrs.frozen
class RemoteUserStatus:
    """What the cache knows of a remote user, and whether it can be trusted."""

    user_id: str
    cached: bool
    # The list's stream_id; None if unknown (or not cached).
    stream_id: int | None
    # The user shares a room with a local user now.
    shares: bool
    # Cached, not stale, and sharing a room with a local user ever since it
    # was fetched: their server told us every change since.
    trusted: bool


@attrs.frozen
class CachedDevice:
    device_id: str
    # The signed device keys as JSON text; None for a device without keys.
    keys_json: str | None
    display_name: str | None


@attrs.frozen
class CachedUser:
    """A remote user's whole device list and public cross-signing keys."""

    user_id: str
    stream_id: int | None
    devices: tuple[CachedDevice, ...]
    master_key_json: str | None
    self_signing_key_json: str | None


# $1 the users, $2 our server name. `since`: the earliest position from which
# the user has been joined to a room together with a local user (both
# current join events at or before it), if they share one now.
_STATUS = """
WITH sharing AS (
    SELECT a.state_key AS user_id,
           min(GREATEST(ea.stream_ordering, eb.stream_ordering)) AS since
    FROM current_state a
    JOIN events ea ON ea.event_id = a.event_id
    JOIN current_state b ON b.room_id = a.room_id AND b.type = 'm.room.member'
                        AND b.membership = 'join'
    JOIN events eb ON eb.event_id = b.event_id
    WHERE a.type = 'm.room.member' AND a.membership = 'join' AND a.state_key = ANY($1::text[])
      AND substring(b.state_key from position(':' in b.state_key) + 1) = $2
    GROUP BY a.state_key
)
SELECT w.user_id, r.user_id IS NOT NULL AS cached, r.stream_id,
       s.since IS NOT NULL AS shares,
       coalesce(NOT r.stale AND s.since <= r.events_position, FALSE) AS trusted
FROM unnest($1::text[]) AS w(user_id)
LEFT JOIN e2e_remote_users r ON r.user_id = w.user_id
LEFT JOIN sharing s ON s.user_id = w.user_id
"""

# Replace whole lists, unless a list fetched later is already stored.
_REPLACE_USERS = """
INSERT INTO e2e_remote_users
    (user_id, stream_id, events_position, stale, master_key, self_signing_key)
SELECT u.user_id, u.stream_id, $5, FALSE, u.master_key, u.self_signing_key
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
     AS u(user_id, stream_id, master_key, self_signing_key)
ON CONFLICT (user_id) DO UPDATE
SET stream_id = excluded.stream_id, events_position = excluded.events_position, stale = FALSE,
    master_key = excluded.master_key, self_signing_key = excluded.self_signing_key
WHERE e2e_remote_users.events_position <= excluded.events_position
RETURNING user_id
"""

_SET_DEVICE = """
INSERT INTO e2e_remote_devices (user_id, device_id, keys, display_name)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, device_id) DO UPDATE
SET keys = excluded.keys, display_name = excluded.display_name
"""


class RemoteKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def status(
        self, user_ids: Collection[str], server_name: str
    ) -> dict[str, RemoteUserStatus]:
        """The cache status of remote users, in one query."""
        rows = await self._pool.fetch(_STATUS, list(user_ids), server_name)
        return {r["user_id"]: RemoteUserStatus(*r.values()) for r in rows}

    async def cached(self, user_ids: Collection[str]) -> dict[str, CachedUser]:
        """The cached lists of the users that have one, in one query."""
        rows = await self._pool.fetch(
            """SELECT r.user_id, r.stream_id, r.master_key, r.self_signing_key,
                      d.device_id, d.keys, d.display_name
               FROM e2e_remote_users r
               LEFT JOIN e2e_remote_devices d ON d.user_id = r.user_id
               WHERE r.user_id = ANY($1::text[])
               ORDER BY r.user_id, d.device_id""",
            list(user_ids),
        )
        found: dict[str, CachedUser] = {}
        for r in rows:
            user = found.get(r["user_id"])
            if user is None:
                user = found[r["user_id"]] = CachedUser(
                    r["user_id"], r["stream_id"], (), r["master_key"], r["self_signing_key"]
                )
            if r["device_id"] is not None:
                device = CachedDevice(r["device_id"], r["keys"], r["display_name"])
                found[r["user_id"]] = attrs.evolve(user, devices=(*user.devices, device))
        return found

    async def replace(self, users: Sequence[CachedUser], events_position: int) -> None:
        """Store the whole lists of these users, fetched after `events_position`,
        in one transaction; a user whose stored list was fetched later keeps it."""
        if not users:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _REPLACE_USERS,
                [u.user_id for u in users],
                [u.stream_id for u in users],
                [u.master_key_json for u in users],
                [u.self_signing_key_json for u in users],
                events_position,
            )
            replaced = {r["user_id"] for r in rows}
            if not replaced:
                return
            await conn.execute(
                "DELETE FROM e2e_remote_devices WHERE user_id = ANY($1::text[])", list(replaced)
            )
            devices = [(u.user_id, d) for u in users if u.user_id in replaced for d in u.devices]
            await conn.execute(
                """INSERT INTO e2e_remote_devices (user_id, device_id, keys, display_name)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])""",
                [u for u, _ in devices],
                [d.device_id for _, d in devices],
                [d.keys_json for _, d in devices],
                [d.display_name for _, d in devices],
            )

    async def apply_update(
        self, user_id: str, stream_id: int, device: CachedDevice, *, deleted: bool
    ) -> None:
        """One m.device_list_update: the device changed or went; the list is
        now at `stream_id`. One transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            if deleted:
                await conn.execute(
                    "DELETE FROM e2e_remote_devices WHERE user_id = $1 AND device_id = $2",
                    user_id,
                    device.device_id,
                )
            else:
                await conn.execute(
                    _SET_DEVICE, user_id, device.device_id, device.keys_json, device.display_name
                )
            await conn.execute(
                "UPDATE e2e_remote_users SET stream_id = $2 WHERE user_id = $1", user_id, stream_id
            )

    async def mark_stale(self, user_id: str) -> None:
        """The cached list missed an update: the next query asks the remote."""
        await self._pool.execute(
            "UPDATE e2e_remote_users SET stale = TRUE WHERE user_id = $1", user_id
        )

    async def set_signing_keys(
        self, user_id: str, master_key_json: str | None, self_signing_key_json: str | None
    ) -> None:
        """New public cross-signing keys of a cached user (None: unchanged)."""
        await self._pool.execute(
            """UPDATE e2e_remote_users
               SET master_key = coalesce($2, master_key),
                   self_signing_key = coalesce($3, self_signing_key)
               WHERE user_id = $1""",
            user_id,
            master_key_json,
            self_signing_key_json,
        )

    async def local_stream_id(self, user_id: str) -> int:
        """The stream_id of the last m.device_list_update sent for a local
        user (0 before any): the version of the list /user/devices returns."""
        value = await self._pool.fetchval(
            "SELECT stream_id FROM federation_device_list_ids WHERE user_id = $1", user_id
        )
        return value or 0
