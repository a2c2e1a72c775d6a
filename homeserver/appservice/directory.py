"""The room directories of an appservice's third-party networks.

`PUT /directory/list/appservice/{networkId}/{roomId}` publishes a bridged
room in the directory of one network of the appservice (an IRC network, a
Slack workspace); /publicRooms lists it for that network's
`third_party_instance_id` or with `include_all_networks`, not in the main list.
"""

from __future__ import annotations

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.requester import Requester
from storage.appservice_directory import AppServiceDirectoryStore


class AppServiceDirectory:
    def __init__(self, store: AppServiceDirectoryStore) -> None:
        self._store = store

    async def set_visibility(
        self, requester: Requester, network_id: str, room_id: str, visibility: str
    ) -> None:
        if requester.app_service_id is None:
            raise forbidden("Only application services can edit their networks' room lists")
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be 'public' or 'private'")
        if not await self._store.room_exists(room_id):
            raise not_found("Unknown room")
        if visibility == "public":
            await self._store.publish(requester.app_service_id, network_id, room_id)
        else:
            await self._store.unpublish(requester.app_service_id, network_id, room_id)
