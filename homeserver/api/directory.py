"""Room aliases, the published room directory, room upgrades and the space hierarchy."""

from __future__ import annotations

from typing import Any

import attrs

from homeserver.api.http import CLIENT_V1, ClientRequest, endpoint
from homeserver.api.params import opt_bool, opt_str, opt_str_list, req_str
from homeserver.appservice.queries import parse_instance_id
from homeserver.errors import bad_json, invalid_param
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.hierarchy import SpaceHierarchy
from homeserver.rooms.upgrade import RoomUpgrader
from storage.directory import DirectoryFilter


def _query_int(req: ClientRequest, name: str) -> int | None:
    value = req.query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid_param(f"{name} must be an integer") from None


def directory_filter(raw: Any) -> DirectoryFilter:
    """The `filter` of a POST /publicRooms body (client or federation); 400 if malformed."""
    if raw is None:
        return DirectoryFilter()
    if not isinstance(raw, dict):
        raise bad_json("'filter' must be an object")
    room_types = raw.get("room_types")
    if room_types is not None and (
        not isinstance(room_types, list)
        or not all(t is None or isinstance(t, str) for t in room_types)
    ):
        raise bad_json("'room_types' must be a list of strings and nulls")
    return DirectoryFilter(
        search_term=opt_str(raw, "generic_search_term"),
        room_types=tuple(room_types) if room_types is not None else None,
    )


def network_filter(
    where: DirectoryFilter, instance: str | None, all_networks: bool
) -> DirectoryFilter:
    """/publicRooms' choice of list: the main one, one appservice network's
    (`third_party_instance_id`), or all of them (`include_all_networks`)."""
    if instance is None:
        return attrs.evolve(where, all_networks=all_networks)
    if all_networks:
        raise invalid_param("third_party_instance_id needs include_all_networks to be false")
    network = parse_instance_id(instance)
    if network is None:
        raise invalid_param(f"Invalid third_party_instance_id {instance!r}")
    return attrs.evolve(where, network=network)


class DirectoryApi:
    def __init__(
        self, directory: DirectoryService, upgrader: RoomUpgrader, hierarchy: SpaceHierarchy
    ) -> None:
        self._directory = directory
        self._upgrader = upgrader
        self._hierarchy = hierarchy

    @endpoint("PUT", "/directory/room/{roomAlias}")
    async def put_alias(self, req: ClientRequest) -> dict[str, Any]:
        room_id = req_str(req.json(), "room_id")
        await self._directory.create_alias(req.user, req.params["roomAlias"], room_id)
        return {}

    @endpoint("GET", "/directory/room/{roomAlias}", auth=False)
    async def get_alias(self, req: ClientRequest) -> dict[str, Any]:
        return await self._directory.resolve_any_alias(req.params["roomAlias"])

    @endpoint("DELETE", "/directory/room/{roomAlias}")
    async def delete_alias(self, req: ClientRequest) -> dict[str, Any]:
        await self._directory.delete_alias(req.user, req.params["roomAlias"])
        return {}

    @endpoint("GET", "/rooms/{roomId}/aliases")
    async def room_aliases(self, req: ClientRequest) -> dict[str, Any]:
        return {"aliases": await self._directory.room_aliases(req.user, req.params["roomId"])}

    @endpoint("GET", "/directory/list/room/{roomId}", auth=False)
    async def get_visibility(self, req: ClientRequest) -> dict[str, Any]:
        return {"visibility": await self._directory.visibility(req.params["roomId"])}

    @endpoint("PUT", "/directory/list/room/{roomId}")
    async def put_visibility(self, req: ClientRequest) -> dict[str, Any]:
        visibility = opt_str(req.json(), "visibility") or "public"
        await self._directory.set_visibility(req.user, req.params["roomId"], visibility)
        return {}

    @endpoint("GET", "/publicRooms", auth=False)
    async def get_public_rooms(self, req: ClientRequest) -> dict[str, Any]:
        page = await self._directory.public_rooms(
            server=req.query.get("server"),
            limit=_query_int(req, "limit"),
            since=req.query.get("since"),
            where=network_filter(
                DirectoryFilter(),
                req.query.get("third_party_instance_id"),
                req.query_bool("include_all_networks"),
            ),
        )
        return page.to_json()

    @endpoint("POST", "/publicRooms", guest_ok=True, cancellable=True)
    async def post_public_rooms(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        limit = body.get("limit")
        if limit is not None and type(limit) is not int:
            raise bad_json("'limit' must be an integer")
        where = network_filter(
            directory_filter(body.get("filter")),
            opt_str(body, "third_party_instance_id"),
            opt_bool(body, "include_all_networks", False),
        )
        page = await self._directory.public_rooms(
            server=req.query.get("server"),
            limit=limit,
            since=opt_str(body, "since"),
            where=where,
        )
        return page.to_json()

    @endpoint("POST", "/rooms/{roomId}/upgrade")
    async def upgrade(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        new_room = await self._upgrader.upgrade(
            req.user,
            req.params["roomId"],
            req_str(body, "new_version"),
            opt_str_list(body, "additional_creators"),
        )
        return {"replacement_room": new_room}

    @endpoint("GET", "/rooms/{roomId}/hierarchy", prefixes=CLIENT_V1, guest_ok=True)
    async def hierarchy(self, req: ClientRequest) -> dict[str, Any]:
        return await self._hierarchy.hierarchy(
            req.user,
            req.params["roomId"],
            suggested_only=req.query_bool("suggested_only"),
            limit=_query_int(req, "limit"),
            max_depth=_query_int(req, "max_depth"),
            from_token=req.query.get("from"),
        )
