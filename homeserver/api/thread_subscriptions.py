"""Thread subscriptions (MSC4306) and the paging of their changes (MSC4308),
under the unstable prefixes Synapse serves and Element's clients call."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str
from homeserver.errors import bad_json, invalid_param, missing_param
from homeserver.rooms.thread_subscriptions import ThreadSubscriptions

MSC4306 = ("/_matrix/client/unstable/io.element.msc4306",)
MSC4308 = ("/_matrix/client/unstable/io.element.msc4308",)
SUBSCRIPTION = "/rooms/{roomId}/thread/{threadRootId}/subscription"
DEFAULT_LIMIT = 100
# As Synapse: a larger `limit` is lowered to this.
MAX_LIMIT = 512


def _limit(req: ClientRequest) -> int:
    raw = req.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) < 1:
        raise invalid_param("limit must be a positive integer")
    return min(int(raw), MAX_LIMIT)


class ThreadSubscriptionsApi:
    def __init__(self, subscriptions: ThreadSubscriptions) -> None:
        self._subscriptions = subscriptions

    @endpoint("GET", SUBSCRIPTION, prefixes=MSC4306)
    async def get(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        return await self._subscriptions.get(req.user.user_id, p["roomId"], p["threadRootId"])

    @endpoint("PUT", SUBSCRIPTION, prefixes=MSC4306)
    async def put(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        body = req.json()
        # The event that caused an automatic subscription; absent: a manual one.
        cause = opt_str(body, "automatic")
        if cause is not None and not cause.startswith("$"):
            raise bad_json("'automatic' must be an event id")
        await self._subscriptions.subscribe(req.user.user_id, p["roomId"], p["threadRootId"], cause)
        return {}

    @endpoint("DELETE", SUBSCRIPTION, prefixes=MSC4306)
    async def delete(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        await self._subscriptions.unsubscribe(req.user.user_id, p["roomId"], p["threadRootId"])
        return {}

    @endpoint("GET", "/thread_subscriptions", prefixes=MSC4308)
    async def page(self, req: ClientRequest) -> dict[str, Any]:
        if "dir" not in req.query:
            raise missing_param("'dir' is required")
        if req.query["dir"] != "b":
            raise invalid_param("'dir' must be 'b'")
        return await self._subscriptions.page(
            req.user.user_id, req.query.get("from"), req.query.get("to"), _limit(req)
        )
