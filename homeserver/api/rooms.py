"""Rooms: creation, sending, state changes and membership (reads are in room_history)."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.rooms.service import RoomService

# Keys of a join's body that are request parameters, not member event content.
_JOIN_PARAMS = frozenset({"reason", "third_party_signed"})


def _via(req: ClientRequest) -> list[str]:
    """The servers a client says the room can be reached through (`via`, and
    the older `server_name`)."""
    return [*req.query.getall("via", []), *req.query.getall("server_name", [])]


class RoomsApi:
    def __init__(self, rooms: RoomService) -> None:
        self._rooms = rooms

    @endpoint("POST", "/createRoom")
    async def create_room(self, req: ClientRequest) -> dict[str, Any]:
        return {"room_id": await self._rooms.create_room(req.user, req.json())}

    @endpoint("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}")
    async def send(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        stored = await self._rooms.send_event(
            req.user, p["roomId"], p["eventType"], req.json(), txn_id=p["txnId"]
        )
        return {"event_id": stored.event.event_id}

    @endpoint("PUT", "/rooms/{roomId}/state/{eventType}")
    @endpoint("PUT", "/rooms/{roomId}/state/{eventType}/")
    @endpoint("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}")
    async def put_state(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        stored = await self._rooms.send_event(
            req.user, p["roomId"], p["eventType"], req.json(), state_key=p.get("stateKey", "")
        )
        return {"event_id": stored.event.event_id}

    @endpoint("POST", "/join/{roomIdOrAlias}")
    async def join_by_id_or_alias(self, req: ClientRequest) -> dict[str, Any]:
        room_id, servers = await self._rooms.resolve_room_via(
            req.params["roomIdOrAlias"], _via(req)
        )
        return await self._join(req, room_id, servers)

    @endpoint("POST", "/rooms/{roomId}/join")
    async def join(self, req: ClientRequest) -> dict[str, Any]:
        return await self._join(req, req.params["roomId"])

    async def _join(
        self, req: ClientRequest, room_id: str, servers: list[str] | None = None
    ) -> dict[str, Any]:
        body = req.json()
        await self._rooms.set_membership(
            req.user,
            room_id,
            req.user.user_id,
            "join",
            reason=opt_str(body, "reason"),
            # As Synapse: other keys of the body go into the member event.
            extra={k: v for k, v in body.items() if k not in _JOIN_PARAMS},
            servers=servers or (),
        )
        return {"room_id": room_id}

    @endpoint("POST", "/knock/{roomIdOrAlias}")
    async def knock(self, req: ClientRequest) -> dict[str, Any]:
        room_id, servers = await self._rooms.resolve_room_via(
            req.params["roomIdOrAlias"], _via(req)
        )
        await self._rooms.set_membership(
            req.user,
            room_id,
            req.user.user_id,
            "knock",
            reason=opt_str(req.json(), "reason"),
            servers=servers,
        )
        return {"room_id": room_id}

    @endpoint("POST", "/rooms/{roomId}/leave")
    async def leave(self, req: ClientRequest) -> dict[str, Any]:
        await self._rooms.set_membership(
            req.user,
            req.params["roomId"],
            req.user.user_id,
            "leave",
            reason=opt_str(req.json(), "reason"),
        )
        return {}

    @endpoint("POST", "/rooms/{roomId}/forget")
    async def forget(self, req: ClientRequest) -> dict[str, Any]:
        await self._rooms.forget(req.user, req.params["roomId"])
        return {}

    async def _member_action(self, req: ClientRequest, action: str) -> dict[str, Any]:
        body = req.json()
        await self._rooms.set_membership(
            req.user,
            req.params["roomId"],
            req_str(body, "user_id"),
            action,
            reason=opt_str(body, "reason"),
        )
        return {}

    @endpoint("POST", "/rooms/{roomId}/invite")
    async def invite(self, req: ClientRequest) -> dict[str, Any]:
        return await self._member_action(req, "invite")

    @endpoint("POST", "/rooms/{roomId}/kick")
    async def kick(self, req: ClientRequest) -> dict[str, Any]:
        return await self._member_action(req, "kick")

    @endpoint("POST", "/rooms/{roomId}/ban")
    async def ban(self, req: ClientRequest) -> dict[str, Any]:
        return await self._member_action(req, "ban")

    @endpoint("POST", "/rooms/{roomId}/unban")
    async def unban(self, req: ClientRequest) -> dict[str, Any]:
        return await self._member_action(req, "unban")

    @endpoint("GET", "/joined_rooms")
    async def joined_rooms(self, req: ClientRequest) -> dict[str, Any]:
        return {"joined_rooms": await self._rooms.joined_rooms(req.user.user_id)}

    @endpoint("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}")
    async def redact(self, req: ClientRequest) -> dict[str, Any]:
        p = req.params
        body = req.json()
        content: dict[str, Any] = {}
        reason = opt_str(body, "reason")
        if reason is not None:
            content["reason"] = reason
        stored = await self._rooms.send_event(
            req.user,
            p["roomId"],
            "m.room.redaction",
            content,
            txn_id=p["txnId"],
            redacts=p["eventId"],
        )
        return {"event_id": stored.event.event_id}
