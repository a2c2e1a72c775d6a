"""Queries over federation: profiles, room aliases, the public room directory."""

from __future__ import annotations

from typing import Any

from federation.http import FEDERATION_V1, FederationRequest, federation_endpoint, query_int
from homeserver.api.directory import directory_filter
from homeserver.api.params import opt_str
from homeserver.errors import MatrixError, bad_json, not_found
from homeserver.profile import ProfileService
from homeserver.rooms.directory import DirectoryService
from storage.directory import DirectoryFilter


def _required(req: FederationRequest, name: str) -> str:
    value = req.query.get(name)
    if not value:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing {name}")
    return value


class FederationQueryApi:
    def __init__(
        self, profiles: ProfileService, directory: DirectoryService, *, server_name: str
    ) -> None:
        self._profiles = profiles
        self._directory = directory
        self._server_name = server_name

    @federation_endpoint("GET", FEDERATION_V1 + "/query/{queryType}")
    async def query(self, req: FederationRequest) -> dict[str, Any]:
        """The spec's generic query: `profile` and `directory` are the known
        types; any other answers 404 M_NOT_FOUND, as Synapse does for a query
        type it has no handler for."""
        query_type = req.params["queryType"]
        if query_type == "profile":
            return await self.profile(req)
        if query_type == "directory":
            return await self.directory(req)
        raise not_found(f"No handler for query type {query_type!r}")

    async def profile(self, req: FederationRequest) -> dict[str, Any]:
        user_id = _required(req, "user_id")
        if user_id.partition(":")[2] != self._server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "The user is not on this server")
        profile = await self._profiles.get_profile(user_id)
        field = req.query.get("field")
        if field is None:
            return profile
        if field not in profile:
            raise not_found(f"The profile has no {field!r}")
        return {field: profile[field]}

    async def directory(self, req: FederationRequest) -> dict[str, Any]:
        return await self._directory.resolve_alias(_required(req, "room_alias"))

    @federation_endpoint("GET", FEDERATION_V1 + "/publicRooms")
    async def get_public_rooms(self, req: FederationRequest) -> dict[str, Any]:
        if req.query.get("third_party_instance_id"):
            return {"chunk": [], "total_room_count_estimate": 0}
        limit = query_int(req, "limit", 0) or None
        page = await self._directory.public_rooms(
            server=None, limit=limit, since=req.query.get("since"), where=DirectoryFilter()
        )
        return page.to_json()

    @federation_endpoint("POST", FEDERATION_V1 + "/publicRooms")
    async def post_public_rooms(self, req: FederationRequest) -> dict[str, Any]:
        body = req.json()
        limit = body.get("limit")
        if limit is not None and type(limit) is not int:
            raise bad_json("'limit' must be an integer")
        if opt_str(body, "third_party_instance_id") is not None:
            return {"chunk": [], "total_room_count_estimate": 0}
        where = directory_filter(body.get("filter") or None)
        page = await self._directory.public_rooms(
            server=None, limit=limit, since=opt_str(body, "since"), where=where
        )
        return page.to_json()
