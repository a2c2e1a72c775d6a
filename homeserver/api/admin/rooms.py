"""Admin API: rooms (list, details, state, messages, delete, block, purge, joins)."""

from __future__ import annotations

from typing import Any

from homeserver.admin.rooms import AdminRooms, DeleteRequest
from homeserver.api.admin.common import order_by, paging, query_int
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.api.params import opt_bool, opt_str, req_str
from homeserver.errors import bad_json
from homeserver.rooms.history import check_token
from storage.admin_rooms import ROOM_ORDER


def _delete_request(body: dict[str, Any]) -> DeleteRequest:
    defaults = DeleteRequest()
    return DeleteRequest(
        new_room_user_id=opt_str(body, "new_room_user_id"),
        room_name=opt_str(body, "room_name") or defaults.room_name,
        message=opt_str(body, "message") or defaults.message,
        block=opt_bool(body, "block", False),
        purge=opt_bool(body, "purge", True),
        force_purge=opt_bool(body, "force_purge", False),
    )


class AdminRoomsApi:
    def __init__(self, rooms: AdminRooms) -> None:
        self._rooms = rooms

    @admin_endpoint("GET", "/v1/rooms")
    async def list_rooms(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, backwards = paging(req)
        return await self._rooms.list_rooms(
            search_term=req.query.get("search_term"),
            order_by=order_by(req, ROOM_ORDER, "name"),
            backwards=backwards,
            offset=offset,
            limit=limit,
        )

    @admin_endpoint("GET", "/v1/rooms/{roomId}")
    async def room(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.details(req.params["roomId"])

    @admin_endpoint("GET", "/v1/rooms/{roomId}/members")
    async def members(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.members(req.params["roomId"])

    @admin_endpoint("GET", "/v1/rooms/{roomId}/state")
    async def state(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.state(req.params["roomId"])

    @admin_endpoint("GET", "/v1/rooms/{roomId}/messages")
    async def messages(self, req: ClientRequest) -> dict[str, Any]:
        from_token = req.query.get("from")
        check_token(from_token)
        limit = query_int(req, "limit", 10)
        assert limit is not None
        direction = req.query.get("dir", "b")
        if direction not in ("f", "b"):
            raise bad_json("dir must be 'f' or 'b'")
        return await self._rooms.messages(
            req.params["roomId"],
            from_token=from_token,
            backwards=direction == "b",
            limit=max(1, min(limit, 1000)),
        )

    @admin_endpoint("DELETE", "/v1/rooms/{roomId}", action="room.delete")
    async def delete_room(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.delete_room(
            req.user, req.params["roomId"], _delete_request(req.json())
        )

    @admin_endpoint("DELETE", "/v2/rooms/{roomId}", action="room.delete_async")
    async def delete_room_v2(self, req: ClientRequest) -> dict[str, Any]:
        delete_id = await self._rooms.start_delete(
            req.user, req.params["roomId"], _delete_request(req.json())
        )
        return {"delete_id": delete_id}

    @admin_endpoint("GET", "/v2/rooms/{roomId}/delete_status")
    async def delete_statuses(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.delete_statuses(req.params["roomId"])

    @admin_endpoint("GET", "/v2/rooms/delete_status/{deleteId}")
    async def delete_status(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.delete_status(req.params["deleteId"])

    @admin_endpoint("POST", "/v1/join/{roomIdOrAlias}", action="room.join_user")
    async def join(self, req: ClientRequest) -> dict[str, Any]:
        user_id = req_str(req.json(), "user_id")
        room_id = await self._rooms.join(req.user, req.params["roomIdOrAlias"], user_id)
        return {"room_id": room_id}

    @admin_endpoint("POST", "/v1/rooms/{roomId}/make_room_admin", action="room.make_room_admin")
    async def make_room_admin(self, req: ClientRequest) -> dict[str, Any]:
        user_id = opt_str(req.json(), "user_id") or req.user.user_id
        await self._rooms.make_room_admin(req.user, req.params["roomId"], user_id)
        return {}

    @admin_endpoint("GET", "/v1/rooms/{roomId}/block")
    async def block_status(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.block_status(req.params["roomId"])

    @admin_endpoint("PUT", "/v1/rooms/{roomId}/block", action="room.block")
    async def block(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body.get("block"), bool):
            raise bad_json("'block' must be true or false")
        await self._rooms.set_blocked(req.user, req.params["roomId"], body["block"])
        return {"block": body["block"]}

    @admin_endpoint("GET", "/v1/rooms/{roomId}/forward_extremities")
    async def forward_extremities(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.forward_extremities(req.params["roomId"])

    @admin_endpoint(
        "DELETE", "/v1/rooms/{roomId}/forward_extremities", action="room.delete_extremities"
    )
    async def delete_forward_extremities(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.delete_forward_extremities(req.params["roomId"])

    @admin_endpoint("POST", "/v1/purge_history/{roomId}", action="room.purge_history")
    async def purge_history(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        ts = body.get("purge_up_to_ts")
        if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
            raise bad_json("'purge_up_to_ts' must be an integer")
        purge_id = await self._rooms.start_purge_history(
            req.params["roomId"],
            event_id=opt_str(body, "purge_up_to_event_id"),
            ts=ts,
            delete_local_events=opt_bool(body, "delete_local_events", False),
        )
        return {"purge_id": purge_id}

    @admin_endpoint("GET", "/v1/purge_history_status/{purgeId}")
    async def purge_status(self, req: ClientRequest) -> dict[str, Any]:
        return await self._rooms.purge_status(req.params["purgeId"])
