"""Other servers' users joining our rooms: make_join and send_join (v2).

make_join answers with an unsigned join template built on the room's forward
extremities and current state, after checking the join would be allowed.
send_join takes the template back, signed by the joining server, verifies it
(signatures through the key ring, content hash, then the auth rules in the
event pipeline), persists it like any other event, and answers with the room
state before the join and its auth chain, so that the joining server can
start from there.

Restricted rooms (rooms 8+): when the joiner needs someone's word, make_join
names one of our members able to invite in `join_authorised_via_users_server`
(homeserver/rooms/restricted.py decides), and send_join signs the join
before anything else: the auth rules require that signature, so ours is what
lets the join in, and the joining server gets the event back with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signedjson.types import SigningKey

from federation.keys import KeyRing
from federation.membership_checks import check_membership_event, invalid
from federation.partial_join import without_members
from federation.serving import FederationReads
from federation.templates import membership_template, room_head
from federation.verification import verify_pdu_signatures
from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import Event, parse_event
from homeserver.events.hashing import check_content_hash
from homeserver.events.room_versions import RoomVersion
from homeserver.events.signing import sign_event
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.restricted import AUTHORISER_KEY, RestrictedJoins
from storage.events import EventStore
from storage.federation_reads import FederationReadStore


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class JoinService:
    def __init__(
        self,
        events: EventStore,
        reads: FederationReads,
        read_store: FederationReadStore,
        pipeline: EventPipeline,
        keys: KeyRing,
        restricted: RestrictedJoins,
        *,
        server_name: str,
        signing_key: SigningKey,
    ) -> None:
        self._events = events
        self._reads = reads
        self._read_store = read_store
        self._pipeline = pipeline
        self._keys = keys
        self._restricted = restricted
        self._server_name = server_name
        self._signing_key = signing_key

    async def _room(self, origin: str, room_id: str) -> RoomVersion:
        room_version = await self._events.room_version(room_id)
        if room_version is None:
            raise not_found("Unknown room")
        await self._reads.check_acl(origin, room_id)
        return room_version

    async def make_join(
        self, origin: str, room_id: str, user_id: str, supported_versions: list[str]
    ) -> dict[str, Any]:
        """A join template for `user_id`; 403 if the room would refuse the join
        (400 M_UNABLE_TO_AUTHORISE_JOIN or M_UNABLE_TO_GRANT_JOIN when this
        server cannot vouch for a restricted join another server might)."""
        if _server_of(user_id) != origin:
            raise forbidden("A server may only join its own users")
        room_version = await self._room(origin, room_id)
        if room_version.identifier not in supported_versions:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                "Your server does not support this room's version",
                room_version=room_version.identifier,
            )
        head = await room_head(self._events, self._read_store, room_id, room_version)
        content: dict[str, Any] = {"membership": "join"}
        authoriser = await self._restricted.authoriser(room_version, room_id, head.state, user_id)
        if authoriser is not None:
            content[AUTHORISER_KEY] = authoriser
        template = membership_template(
            room_version,
            room_id,
            user_id,
            content,
            head,
            server_name=self._server_name,
            signing_key=self._signing_key,
        )
        return {"event": template, "room_version": room_version.identifier}

    async def send_join(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        pdu: Mapping[str, Any],
        *,
        omit_members: bool = False,
    ) -> dict[str, Any]:
        """Verify, sign and persist a join; answer with the state and auth
        chain before it, and the join as signed here. With `omit_members`,
        the reduced answer of partial_join.py."""
        room_version = await self._room(origin, room_id)
        try:
            event = parse_event(pdu, room_version, event_id=event_id)
        except InvalidEventError as e:
            raise bad_json(f"Invalid event: {e}") from None
        if event.room_id != room_id:
            raise bad_json("The event is for another room")
        check_membership_event(event, "join", origin, own=True)
        if room_version.restricted_join_rule and AUTHORISER_KEY in event.content:
            await self._check_vouching(room_id, event)
        if not check_content_hash(pdu):
            raise invalid("The event's content hash does not match")
        signed = sign_event(
            {k: v for k, v in pdu.items() if k != "unsigned"},
            self._server_name,
            self._signing_key,
            room_version,
        )
        try:
            await verify_pdu_signatures(self._keys, signed, room_version)
        except InvalidEventError as e:
            raise invalid(f"The event fails the signature check: {e}") from None
        event = parse_event(signed, room_version, event_id=event_id)
        await self._pipeline.accept_remote(event)
        state = await self._reads.state_before(room_id, event.event_id)
        servers: list[str] | None = None
        if omit_members:
            state, servers = await without_members(self._events, state, event.sender)
        chain = await self._reads.auth_chain(
            room_version, room_id, [*state.values(), *event.auth_event_ids]
        )
        # No `origin`: the spec dropped it from this answer in v1.14.
        answer: dict[str, Any] = {
            "state": await self._reads.pdus(sorted(state.values())),
            "auth_chain": await self._reads.pdus(sorted(chain)),
            "event": signed,
            "members_omitted": servers is not None,
        }
        if servers is not None:
            answer["servers_in_room"] = servers
        return answer

    async def _check_vouching(self, room_id: str, event: Event) -> None:
        """A join naming one of our users is signed only if we would name one
        now: the joiner must still be in an allowed room (the auth rules then
        check the named user is joined and may invite)."""
        authoriser = event.content[AUTHORISER_KEY]
        if not isinstance(authoriser, str) or _server_of(authoriser) != self._server_name:
            raise bad_json(
                f"This server vouches only for joins naming its own users in {AUTHORISER_KEY}"
            )
        await self._restricted.current_authoriser(room_id, event.sender)
