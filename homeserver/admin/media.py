"""What administrators do to media: quarantine (by id, room or user), protect,
delete (by id, by age and size, by user) and list a user's uploads."""

from __future__ import annotations

from typing import Any

from homeserver.errors import MatrixError, not_found
from homeserver.media.manage import MediaManager
from storage.admin_media import AdminMediaStore


class AdminMedia:
    def __init__(self, manager: MediaManager, store: AdminMediaStore, server_name: str) -> None:
        self._manager = manager
        self._store = store
        self._server_name = server_name

    def _local(self, server_name: str) -> None:
        if server_name != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Only local media can be managed")

    async def quarantine(self, admin: str, server_name: str, media_id: str) -> None:
        self._local(server_name)
        await self._manager.quarantine([media_id], admin)

    async def unquarantine(self, server_name: str, media_id: str) -> None:
        self._local(server_name)
        await self._manager.unquarantine(media_id)

    async def quarantine_room(self, admin: str, room_id: str) -> int:
        media_ids = [
            m for s, m in await self._store.media_in_room(room_id) if s == self._server_name
        ]
        return await self._manager.quarantine(media_ids, admin) if media_ids else 0

    async def room_media(self, room_id: str) -> dict[str, Any]:
        """The mxc URLs a room's events point at, this server's and others'."""
        found = await self._store.media_in_room(room_id)
        urls = [(s == self._server_name, f"mxc://{s}/{m}") for s, m in found]
        return {
            "local": [url for local, url in urls if local],
            "remote": [url for local, url in urls if not local],
        }

    async def quarantine_user(self, admin: str, user_id: str) -> int:
        return await self._manager.quarantine_user(user_id, admin)

    async def protect(self, media_id: str, protected: bool) -> None:
        if not await self._manager.protect(media_id, protected):
            raise not_found("Unknown media")

    async def delete(self, server_name: str, media_id: str) -> dict[str, Any]:
        self._local(server_name)
        if not await self._manager.delete(media_id):
            raise not_found("Unknown media")
        return {"deleted_media": [media_id], "total": 1}

    async def delete_old(self, *, before_ts: int, size_gt: int, keep_profiles: bool) -> dict:
        media_ids = await self._store.old_media_ids(
            before_ts=before_ts,
            size_gt=size_gt,
            keep_profiles=keep_profiles,
            server_name=self._server_name,
        )
        return await self._delete_all(media_ids)

    async def delete_user_media(self, user_id: str, *, offset: int, limit: int) -> dict:
        media_ids = await self._store.user_media_ids(user_id, offset=offset, limit=limit)
        return await self._delete_all(media_ids)

    async def _delete_all(self, media_ids: list[str]) -> dict[str, Any]:
        deleted = [m for m in media_ids if await self._manager.delete(m)]
        return {"deleted_media": deleted, "total": len(deleted)}

    async def user_media(self, user_id: str, *, offset: int, limit: int) -> dict[str, Any]:
        media, total = await self._manager.user_media(user_id, offset=offset, limit=limit)
        body: dict[str, Any] = {
            "media": [
                {
                    "media_id": m.media_id,
                    "media_type": m.content_type,
                    "media_length": m.media_length,
                    "upload_name": m.upload_name,
                    "created_ts": m.created_ts,
                    "last_access_ts": m.last_access_ts,
                    "quarantined_by": m.quarantined_by,
                    "safe_from_quarantine": m.safe_from_quarantine,
                }
                for m in media
            ],
            "total": total,
        }
        if offset + len(media) < total:
            body["next_token"] = offset + len(media)
        return body
