"""Invites of our users, and leaves and knocks of other servers' users on our rooms."""

from __future__ import annotations

from typing import Any

from federation.handshakes import MembershipHandshakes
from federation.http import FEDERATION_V1, FEDERATION_V2, FederationRequest, federation_endpoint
from homeserver.errors import bad_json


class FederationMembershipApi:
    def __init__(self, handshakes: MembershipHandshakes) -> None:
        self._handshakes = handshakes

    @federation_endpoint("PUT", FEDERATION_V2 + "/invite/{roomId}/{eventId}")
    async def invite(self, req: FederationRequest) -> dict[str, Any]:
        body = req.json()
        room_version = body.get("room_version")
        if not isinstance(room_version, str):
            raise bad_json("'room_version' must be a string")
        p = req.params
        return await self._handshakes.receive_invite(
            req.origin,
            p["roomId"],
            p["eventId"],
            room_version,
            body.get("event"),
            body.get("invite_room_state", []),
        )

    @federation_endpoint("PUT", FEDERATION_V1 + "/invite/{roomId}/{eventId}")
    async def invite_v1(self, req: FederationRequest) -> list[Any]:
        # Only rooms 1 and 2 (the room version is not sent): the stripped
        # state travels in the event's unsigned section.
        pdu = req.json()
        unsigned = pdu.get("unsigned")
        stripped = unsigned.get("invite_room_state", []) if isinstance(unsigned, dict) else []
        p = req.params
        answer = await self._handshakes.receive_invite(
            req.origin, p["roomId"], p["eventId"], "1", pdu, stripped
        )
        return [200, answer]

    @federation_endpoint("GET", FEDERATION_V1 + "/make_leave/{roomId}/{userId}")
    async def make_leave(self, req: FederationRequest) -> dict[str, Any]:
        p = req.params
        return await self._handshakes.make_membership(
            req.origin, p["roomId"], p["userId"], "leave", []
        )

    @federation_endpoint("PUT", FEDERATION_V2 + "/send_leave/{roomId}/{eventId}")
    async def send_leave(self, req: FederationRequest) -> dict[str, Any]:
        p = req.params
        return await self._handshakes.send_membership(
            req.origin, p["roomId"], p["eventId"], req.json(), "leave"
        )

    @federation_endpoint("PUT", FEDERATION_V1 + "/send_leave/{roomId}/{eventId}")
    async def send_leave_v1(self, req: FederationRequest) -> list[Any]:
        return [200, await self.send_leave(req)]

    @federation_endpoint("GET", FEDERATION_V1 + "/make_knock/{roomId}/{userId}")
    async def make_knock(self, req: FederationRequest) -> dict[str, Any]:
        p = req.params
        return await self._handshakes.make_membership(
            req.origin, p["roomId"], p["userId"], "knock", req.query.getall("ver", [])
        )

    @federation_endpoint("PUT", FEDERATION_V1 + "/send_knock/{roomId}/{eventId}")
    async def send_knock(self, req: FederationRequest) -> dict[str, Any]:
        p = req.params
        return await self._handshakes.send_membership(
            req.origin, p["roomId"], p["eventId"], req.json(), "knock"
        )
