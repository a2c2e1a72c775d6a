"""Third-party networks: the protocols bridges declare, and lookups of their
users and locations, answered by the application services (see
homeserver/appservice/queries.py)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.appservice.queries import AppServiceQueries
from homeserver.errors import missing_param

# Query parameters that are the client's credentials, never search fields.
_NOT_FIELDS = frozenset({"access_token", "user_id", "device_id", "org.matrix.msc3202.device_id"})


def _fields(req: ClientRequest) -> list[tuple[str, str]]:
    return [(k, v) for k, v in req.query.items() if k not in _NOT_FIELDS]


class ThirdPartyApi:
    def __init__(self, queries: AppServiceQueries) -> None:
        self._queries = queries

    @endpoint("GET", "/thirdparty/protocols", guest_ok=True)
    async def protocols(self, req: ClientRequest) -> dict[str, Any]:
        return await self._queries.protocols()

    @endpoint("GET", "/thirdparty/protocol/{protocol}", guest_ok=True)
    async def protocol(self, req: ClientRequest) -> dict[str, Any]:
        return await self._queries.protocol(req.params["protocol"])

    @endpoint("GET", "/thirdparty/location/{protocol}", guest_ok=True)
    async def locations(self, req: ClientRequest) -> tuple[int, list[Any]]:
        return 200, await self._queries.lookup("location", req.params["protocol"], _fields(req))

    @endpoint("GET", "/thirdparty/user/{protocol}", guest_ok=True)
    async def users(self, req: ClientRequest) -> tuple[int, list[Any]]:
        return 200, await self._queries.lookup("user", req.params["protocol"], _fields(req))

    @endpoint("GET", "/thirdparty/location", guest_ok=True)
    async def location_by_alias(self, req: ClientRequest) -> tuple[int, list[Any]]:
        alias = req.query.get("alias")
        if alias is None:
            raise missing_param("'alias' is required")
        return 200, await self._queries.lookup("location", None, [("alias", alias)])

    @endpoint("GET", "/thirdparty/user", guest_ok=True)
    async def user_by_id(self, req: ClientRequest) -> tuple[int, list[Any]]:
        userid = req.query.get("userid")
        if userid is None:
            raise missing_param("'userid' is required")
        return 200, await self._queries.lookup("user", None, [("userid", userid)])
