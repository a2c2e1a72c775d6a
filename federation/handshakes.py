"""Other servers' membership handshakes with us, besides joins (federation/joins.py).

- Invites of our users into rooms elsewhere (/invite v2, v1 for rooms 1-2):
  checked (for one of our users, signed by the inviting server, sound
  hash), signed by us, stored out of band with the stripped state the
  inviting server sent, so that the invitee's /sync shows the invite.
- Their users leaving or knocking on our rooms (make_leave / send_leave,
  make_knock / send_knock): a template checked against the room's rules,
  then the signed event verified and persisted by the event pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signedjson.types import SigningKey

from federation.keys import KeyRing
from federation.membership_checks import (
    check_membership_event,
    check_stripped_state,
    checks_stripped_state,
    invalid,
    verify_signed,
)
from federation.serving import FederationReads
from federation.templates import membership_template, room_head
from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import Event, parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import sign_event
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.service import InvitePolicy
from homeserver.rooms.stripped import stripped_room_state
from storage.events import EventStore
from storage.federation_reads import FederationReadStore
from storage.users import UserStore


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def _without_unsigned(pdu: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pdu.items() if k != "unsigned"}


class MembershipHandshakes:
    def __init__(
        self,
        events: EventStore,
        reads: FederationReads,
        read_store: FederationReadStore,
        pipeline: EventPipeline,
        keys: KeyRing,
        users: UserStore,
        *,
        server_name: str,
        signing_key: SigningKey,
        invite_policy: InvitePolicy | None = None,
    ) -> None:
        # Our users who block invites refuse them (MSC4380).
        self._invite_policy = invite_policy
        self._events = events
        self._reads = reads
        self._read_store = read_store
        self._pipeline = pipeline
        self._keys = keys
        self._users = users
        self._server_name = server_name
        self._signing_key = signing_key

    # Invites of our users

    async def receive_invite(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        room_version_id: str,
        pdu: Any,
        invite_room_state: Any,
    ) -> dict[str, Any]:
        """Check, countersign and store an invite of one of our users."""
        room_version = KNOWN_ROOM_VERSIONS.get(room_version_id)
        if room_version is None:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                "This server does not support the room's version",
                room_version=room_version_id,
            )
        if not isinstance(pdu, dict):
            raise bad_json("'event' must be an object")
        if not isinstance(invite_room_state, list) or not all(
            isinstance(s, dict) for s in invite_room_state
        ):
            raise bad_json("'invite_room_state' must be a list of objects")
        event = self._parse(pdu, room_version, event_id, room_id)
        invitee = event.state_key or ""
        check_membership_event(event, "invite", origin, own=False)
        if _server_of(invitee) != self._server_name:
            raise invalid("The invitee is not a user of this server")
        await self._reads.check_acl(origin, room_id)
        user = await self._users.get_user(invitee)
        if user is None or user.deactivated:
            raise not_found("No such user here")
        if self._invite_policy is not None:
            await self._invite_policy.check_invite(invitee)
        await verify_signed(self._keys, event)
        if checks_stripped_state(room_version):
            await check_stripped_state(self._keys, invite_room_state, room_id, room_version)
        signed = sign_event(
            _without_unsigned(event.pdu), self._server_name, self._signing_key, room_version
        )
        invite = parse_event(signed, room_version)
        creator = next(
            (
                s.get("sender")
                for s in invite_room_state
                if s.get("type") == "m.room.create" and isinstance(s.get("sender"), str)
            ),
            event.sender,
        )
        if not await self._joined_in_dag(invite):
            await self._pipeline.store_out_of_band_member(invite, creator, invite_room_state)
        return {"event": signed}

    async def _joined_in_dag(self, invite: Event) -> bool:
        """In a room this server is in, the invite takes its place in the DAG
        like any event (it will come again in a transaction, already known);
        elsewhere, or when its prev events are unknown here, it is out of band."""
        if not await self._events.current_state_event_id(invite.room_id, "m.room.create", ""):
            return False
        try:
            await self._pipeline.accept_remote(invite)
        except MatrixError as e:
            if e.status == 400:
                return False
            raise
        return True

    # Leaves and knocks of their users

    async def make_membership(
        self, origin: str, room_id: str, user_id: str, membership: str, versions: list[str]
    ) -> dict[str, Any]:
        """A leave or knock template for `user_id`; 403 if the room would refuse it."""
        if _server_of(user_id) != origin:
            raise forbidden("A server may only act for its own users")
        room_version = await self._room(origin, room_id)
        if membership == "knock" and (
            room_version.identifier not in versions or not room_version.knock_join_rule
        ):
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                "Your server does not support this room's version, or it has no knocking",
                room_version=room_version.identifier,
            )
        head = await room_head(self._events, self._read_store, room_id, room_version)
        template = membership_template(
            room_version,
            room_id,
            user_id,
            {"membership": membership},
            head,
            server_name=self._server_name,
            signing_key=self._signing_key,
        )
        return {"event": template, "room_version": room_version.identifier}

    async def send_membership(
        self, origin: str, room_id: str, event_id: str, pdu: Any, membership: str
    ) -> dict[str, Any]:
        """Verify and persist a leave or knock; a knock is answered with the
        room's stripped state."""
        room_version = await self._room(origin, room_id)
        if not isinstance(pdu, dict):
            raise bad_json("The event must be an object")
        event = self._parse(pdu, room_version, event_id, room_id)
        check_membership_event(event, membership, origin, own=True)
        await verify_signed(self._keys, event)
        await self._pipeline.accept_remote(event)
        if membership == "knock":
            return {"knock_room_state": await stripped_room_state(self._events, room_id)}
        return {}

    async def _room(self, origin: str, room_id: str) -> RoomVersion:
        room_version = await self._events.room_version(room_id)
        if room_version is None or not await self._events.current_state_event_id(
            room_id, "m.room.create", ""
        ):
            raise not_found("Unknown room")
        await self._reads.check_acl(origin, room_id)
        return room_version

    def _parse(
        self, pdu: Mapping[str, Any], room_version: RoomVersion, event_id: str, room_id: str
    ) -> Event:
        try:
            event = parse_event(pdu, room_version, event_id=event_id)
        except InvalidEventError as e:
            raise bad_json(f"Invalid event: {e}") from None
        if event.room_id != room_id:
            raise bad_json("The event is for another room")
        return event
