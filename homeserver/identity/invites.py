"""Inviting by email address (or other 3PID) through an identity server
(spec: client-server API, third-party invites; server-server API, 3PID invites).

An invite names an identity server and a 3PID. If the identity server knows
a Matrix user for it, that user is invited as usual. Otherwise the identity
server stores the invite and answers with a token and its public keys, and
the room gets an `m.room.third_party_invite` state event (state key: the
token). When the address is later bound, the identity server calls
/3pid/onbind here with the invite signed by its key; the invite member event
is then sent in the inviter's name, carrying that signature, which the auth
rules check against the keys of the `m.room.third_party_invite` event.
Before that, the identity server is asked whether the key is still valid,
so a revoked key (or an identity server that no longer answers) completes
no invite.

The identity server calls the invitee's server. When the room is on another
server, this server forwards the invite to the inviter's server
(exchange_third_party_invite), which checks and sends it; this server does
the same for invites forwarded to it (`on_exchange`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

import attrs

from homeserver.errors import MatrixError, forbidden, invalid_param, missing_param, not_found
from homeserver.events.auth.membership import third_party_signing_key
from homeserver.identity.client import IdentityServerClient, check_id_server
from homeserver.requester import Requester
from homeserver.rooms.service import RoomService
from homeserver.rooms.stripped import stripped_room_state
from storage.events import EventStore
from storage.rooms import RoomStore

logger = logging.getLogger(__name__)

THIRD_PARTY_INVITE: Final = "m.room.third_party_invite"
# Room state the identity server may show in its invitation (store-invite).
_ROOM_DETAILS: Final = {
    ("m.room.name", "name"): "room_name",
    ("m.room.avatar", "url"): "room_avatar_url",
    ("m.room.join_rules", "join_rule"): "room_join_rules",
    ("m.room.canonical_alias", "alias"): "room_alias",
    ("m.room.create", "type"): "room_type",
}


class InviteForwarder(Protocol):
    """Hands a third-party invite to the server of a room this server is not in."""

    async def exchange(self, destination: str, room_id: str, event: dict[str, Any]) -> None: ...


@attrs.frozen
class ThreepidInvite:
    """Who to invite: a 3PID, and the identity server that may know it."""

    id_server: str
    id_access_token: str
    medium: str
    address: str


def parse_threepid_invite(body: Mapping[str, Any]) -> ThreepidInvite:
    """The 3PID invite fields of an /invite body or an `invite_3pid` entry."""
    values = {}
    for key in ("id_server", "id_access_token", "medium", "address"):
        value = body.get(key)
        if value is None:
            raise missing_param(f"'{key}' is required")
        if not isinstance(value, str) or not value:
            raise invalid_param(f"'{key}' must be a non-empty string")
        values[key] = value
    check_id_server(values["id_server"])
    return ThreepidInvite(**values)


class ThirdPartyInvites:
    def __init__(
        self,
        client: IdentityServerClient,
        rooms: RoomService,
        room_store: RoomStore,
        events: EventStore,
        *,
        server_name: str,
        forwarder: InviteForwarder | None = None,
    ) -> None:
        self._client = client
        self._rooms = rooms
        self._room_store = room_store
        self._events = events
        self._server_name = server_name
        # None when this server does not federate.
        self._forwarder = forwarder

    async def invite(self, requester: Requester, room_id: str, invite: ThreepidInvite) -> None:
        """Invite the user bound to the 3PID, or leave a third-party invite for it."""
        membership, _ = await self._room_store.membership(room_id, requester.user_id)
        if membership != "join":
            if not await self._room_store.exists(room_id):
                raise not_found("Unknown room")
            raise forbidden("Only members of the room may invite")
        mxid = await self._client.lookup(
            invite.id_server, invite.id_access_token, invite.medium, invite.address
        )
        if mxid is not None:
            await self._rooms.set_membership(requester, room_id, mxid, "invite")
            return
        stored = await self._client.store_invite(
            invite.id_server,
            invite.id_access_token,
            await self._store_invite_body(requester.user_id, room_id, invite),
        )
        first = stored.public_keys[0]
        await self._rooms.send_event(
            requester,
            room_id,
            THIRD_PARTY_INVITE,
            {
                "display_name": stored.display_name,
                "key_validity_url": first["key_validity_url"],
                "public_key": first["public_key"],
                "public_keys": stored.public_keys,
            },
            state_key=stored.token,
        )

    async def _store_invite_body(
        self, sender: str, room_id: str, invite: ThreepidInvite
    ) -> dict[str, Any]:
        """What the identity server needs to write its invitation."""
        body: dict[str, Any] = {
            "medium": invite.medium,
            "address": invite.address,
            "room_id": room_id,
            "sender": sender,
        }
        for event in await stripped_room_state(self._events, room_id):
            for (event_type, key), name in _ROOM_DETAILS.items():
                value = event.get("content", {}).get(key)
                if event.get("type") == event_type and isinstance(value, str):
                    body[name] = value
        member = await self._rooms.member_content(sender, "join")
        if isinstance(member.get("displayname"), str):
            body["sender_display_name"] = member["displayname"]
        if isinstance(member.get("avatar_url"), str):
            body["sender_avatar_url"] = member["avatar_url"]
        return body

    async def on_bind(self, body: Mapping[str, Any]) -> None:
        """The identity server's /3pid/onbind: complete the invites it lists.

        Each invite is tried on its own; as in Synapse, the answer is the
        error of the last one that failed (so the identity server, and a
        test driving it, learn that an invite was refused).
        """
        invites = body.get("invites", [])
        if not isinstance(invites, list):
            raise invalid_param("'invites' must be a list")
        failure: MatrixError | None = None
        for invite in invites:
            try:
                if not isinstance(invite, Mapping):
                    raise invalid_param("each invite must be an object")
                await self._complete(invite)
            except MatrixError as e:
                logger.info("third-party invite not completed: %s", e.message)
                failure = e
        if failure is not None:
            raise failure

    async def on_exchange(self, origin: str, room_id: str, event: Mapping[str, Any]) -> None:
        """Another server forwards an invite the identity server gave it:
        the member event it would like, for a room of ours. Only the
        invitee's server gets invites from identity servers, so only it
        may forward one."""
        if event.get("type") != "m.room.member" or event.get("room_id") != room_id:
            raise invalid_param("expected an m.room.member event for this room")
        target = event.get("state_key")
        if not isinstance(target, str) or target.partition(":")[2] != origin:
            raise forbidden("Only the invitee's server may forward a third-party invite")
        content = event.get("content")
        invite = content.get("third_party_invite") if isinstance(content, Mapping) else None
        if not isinstance(invite, Mapping):
            raise invalid_param("the event has no 'third_party_invite'")
        await self._complete(
            {
                "room_id": room_id,
                "mxid": target,
                "sender": event.get("sender"),
                "signed": invite.get("signed"),
            },
            forward=False,
        )

    async def _complete(self, invite: Mapping[str, Any], *, forward: bool = True) -> None:
        room_id, mxid, signed = invite.get("room_id"), invite.get("mxid"), invite.get("signed")
        if not isinstance(room_id, str) or not isinstance(mxid, str):
            raise invalid_param("the invite needs 'room_id' and 'mxid'")
        if not isinstance(signed, Mapping) or not isinstance(signed.get("token"), str):
            raise invalid_param("the invite needs a 'signed' object with a 'token'")
        event_id = await self._events.current_state_event_id(
            room_id, THIRD_PARTY_INVITE, signed["token"]
        )
        stored = (await self._events.get_events([event_id])).get(event_id) if event_id else None
        if stored is None:
            if forward and not await self._room_store.exists(room_id):
                await self._forward(invite.get("sender"), room_id, mxid, signed)
                return
            raise not_found("No third-party invite with this token")
        tpi = stored.event
        if tpi.sender.partition(":")[2] != self._server_name:
            # Only the inviter's server may send the invite in their name.
            if not forward:
                raise forbidden("The inviter is not a user of this server")
            await self._forward(tpi.sender, room_id, mxid, signed)
            return
        await self._check_key(signed, tpi.content)
        await self._rooms.invite_third_party(
            tpi.sender,
            room_id,
            mxid,
            {"display_name": tpi.content.get("display_name", ""), "signed": dict(signed)},
        )

    async def _forward(
        self, sender: Any, room_id: str, mxid: str, signed: Mapping[str, Any]
    ) -> None:
        """The inviter's server completes the invite."""
        if self._forwarder is None or not isinstance(sender, str) or ":" not in sender:
            raise not_found("Unknown room")
        event = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": sender,
            "state_key": mxid,
            "content": {"membership": "invite", "third_party_invite": {"signed": dict(signed)}},
        }
        await self._forwarder.exchange(sender.partition(":")[2], room_id, event)

    async def _check_key(self, signed: Mapping[str, Any], tpi_content: Mapping[str, Any]) -> None:
        """The key that signed the invite must still be valid at its identity server."""
        public_key = third_party_signing_key(signed, tpi_content)
        if public_key is None:
            raise forbidden("The invite's signature matches no key of the third-party invite")
        entries = tpi_content.get("public_keys")
        urls = [
            entry.get("key_validity_url")
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, Mapping) and entry.get("public_key") == public_key
        ]
        if tpi_content.get("public_key") == public_key:
            urls.append(tpi_content.get("key_validity_url"))
        for url in urls:
            if isinstance(url, str) and await self._client.key_is_valid(url, public_key):
                return
        raise forbidden("The identity server no longer vouches for the invite's key")
