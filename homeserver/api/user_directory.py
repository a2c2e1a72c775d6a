"""POST /user_directory/search."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import req_str
from homeserver.errors import bad_json
from homeserver.user_directory import UserDirectory

DEFAULT_LIMIT = 10
# Larger limits are cut to this, as Synapse does.
MAX_LIMIT = 50


class UserDirectoryApi:
    def __init__(self, directory: UserDirectory) -> None:
        self._directory = directory

    @endpoint("POST", "/user_directory/search", cancellable=True)
    async def search(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        term = req_str(body, "search_term")
        limit = body.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise bad_json("'limit' must be an integer")
        return await self._directory.search(req.user.user_id, term, max(0, min(limit, MAX_LIMIT)))
