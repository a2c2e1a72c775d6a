"""Rooms: creation, sending, state changes and membership (reads are in room_history)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.appservice_ts import appservice_ts
from homeserver.api.delayed_events import delay_of, schedule_from_query
from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.delayed_events.service import DelayedEvents
from homeserver.errors import bad_json, invalid_param
from homeserver.identifiers import is_valid_server_name
from homeserver.identity.invites import ThirdPartyInvites, ThreepidInvite, parse_threepid_invite
from homeserver.rooms.service import RoomService

# The fields of an /invite body that invite by 3PID instead of by user id.
_THREEPID_FIELDS = ("id_server", "id_access_token", "medium", "address")

# Keys of a join's body that are request parameters, not member event content.
_JOIN_PARAMS = frozenset({"reason", "third_party_signed"})


def _via(req: ClientRequest) -> list[str]:
    """The servers a client says the room can be reached through (`via`, and
    the older `server_name`); each must be a valid server name."""
    servers = [*req.query.getall("via", []), *req.query.getall("server_name", [])]
    for server in servers:
        if not is_valid_server_name(server):
            raise invalid_param(f"via: {server!r} is not a valid server name")
    return servers


def _invite_3pid(body: dict[str, Any]) -> list[ThreepidInvite]:
    """createRoom's `invite_3pid`, checked before the room is made."""
    entries = body.get("invite_3pid", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise bad_json("invite_3pid must be a list of objects")
    return [parse_threepid_invite(entry) for entry in entries]


class RoomsApi:
    def __init__(
        self,
        rooms: RoomService,
        third_party: ThirdPartyInvites,
        delayed: DelayedEvents | None = None,
    ) -> None:
        self._rooms = rooms
        self._third_party = third_party
        # Delayed events (MSC4140): `org.matrix.msc4140.delay` on /send and /state.
        self._delayed = delayed

    @endpoint("POST", "/createRoom")
    async def create_room(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        threepid_invites = _invite_3pid(body)
        room_id = await self._rooms.create_room(req.user, body)
        for invite in threepid_invites:
            await self._third_party.invite(req.user, room_id, invite)
        return {"room_id": room_id}

    @endpoint("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", guest_ok=True)
    @endpoint("POST", "/rooms/{roomId}/send/{eventType}", guest_ok=True)
    async def send(self, req: ClientRequest) -> dict[str, Any] | web.Response:
        """PUT with the client's transaction id, or the older POST without
        one (which SyTest and old clients use): a POST is never deduplicated,
        and, as in Synapse, its event carries no transaction id back to the
        sender (an id the client never chose would tell it nothing)."""
        p = req.params
        if self._delayed is not None and (delay_ms := delay_of(req)) is not None:
            return await schedule_from_query(
                self._delayed,
                req,
                delay_ms,
                req.json(),
                state_key=None,
                txn_id=p.get("txnId"),
                origin_server_ts=appservice_ts(req),
            )
        stored = await self._rooms.send_event(
            req.user,
            p["roomId"],
            p["eventType"],
            req.json(),
            txn_id=p.get("txnId"),
            origin_server_ts=appservice_ts(req),
        )
        return {"event_id": stored.event.event_id}

    @endpoint("PUT", "/rooms/{roomId}/state/{eventType}", guest_ok=True)
    @endpoint("PUT", "/rooms/{roomId}/state/{eventType}/", guest_ok=True)
    @endpoint("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", guest_ok=True)
    async def put_state(self, req: ClientRequest) -> dict[str, Any] | web.Response:
        p = req.params
        if self._delayed is not None and (delay_ms := delay_of(req)) is not None:
            return await schedule_from_query(
                self._delayed,
                req,
                delay_ms,
                req.json(),
                state_key=p.get("stateKey", ""),
                txn_id=None,
                origin_server_ts=appservice_ts(req),
            )
        stored = await self._rooms.send_event(
            req.user,
            p["roomId"],
            p["eventType"],
            req.json(),
            state_key=p.get("stateKey", ""),
            origin_server_ts=appservice_ts(req),
        )
        return {"event_id": stored.event.event_id}

    @endpoint("POST", "/join/{roomIdOrAlias}", guest_ok=True)
    async def join_by_id_or_alias(self, req: ClientRequest) -> dict[str, Any]:
        room_id, servers = await self._rooms.resolve_room_via(
            req.params["roomIdOrAlias"], _via(req)
        )
        return await self._join(req, room_id, servers)

    @endpoint("POST", "/rooms/{roomId}/join", guest_ok=True)
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

    @endpoint("POST", "/rooms/{roomId}/leave", guest_ok=True)
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
        body = req.json()
        if "user_id" not in body and any(k in body for k in _THREEPID_FIELDS):
            await self._third_party.invite(
                req.user, req.params["roomId"], parse_threepid_invite(body)
            )
            return {}
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

    @endpoint("GET", "/joined_rooms", guest_ok=True)
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
