"""GET /sync."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import invalid_param
from homeserver.filters import FilterService, validate_filter
from homeserver.strict_json import parse_strict_json
from homeserver.sync.service import SyncService
from homeserver.sync.token import SyncToken

_PRESENCE_STATES = ("online", "offline", "unavailable")
# MSC4222 (spec v1.16): the query parameter asking for `state_after`, and the
# response key it answers with. The unstable names are what matrix-js-sdk and
# Synapse use today: a client asking by the unstable name is answered under it.
_STATE_AFTER = (
    ("use_state_after", "state_after"),
    ("org.matrix.msc4222.use_state_after", "org.matrix.msc4222.state_after"),
)


class SyncApi:
    def __init__(self, sync: SyncService, filters: FilterService) -> None:
        self._sync = sync
        self._filters = filters

    @endpoint("GET", "/sync", guest_ok=True)
    async def sync(self, req: ClientRequest) -> dict[str, Any]:
        since = req.query.get("since")
        timeout = req.query.get("timeout", "0")
        if not timeout.isdigit():
            raise invalid_param("timeout must be a whole number of milliseconds")
        set_presence = req.query.get("set_presence", "online")
        if set_presence not in _PRESENCE_STATES:
            raise invalid_param("set_presence must be online, offline or unavailable")
        return await self._sync.sync(
            req.user,
            since=SyncToken.parse(since) if since else None,
            timeout_ms=int(timeout),
            full_state=req.query_bool("full_state"),
            filter=await self._filter(req),
            set_presence=set_presence,
            state_after=self._state_after(req),
        )

    @staticmethod
    def _state_after(req: ClientRequest) -> str | None:
        """The key rooms carry `state_after` under, or None for `state`."""
        for param, key in _STATE_AFTER:
            if req.query_bool(param):
                return key
        return None

    async def _filter(self, req: ClientRequest) -> dict[str, Any]:
        """A filter id of the user's, or a filter definition inline."""
        raw = req.query.get("filter")
        if raw is None:
            return {}
        if raw.lstrip().startswith("{"):
            definition = parse_strict_json(raw)
            validate_filter(definition)
            return definition
        return await self._filters.get(req.user.user_id, req.user.user_id, raw)
