"""The checks the spec (v1.18) lists for PDUs given to the federation
membership endpoints (`send_join`, `send_leave`, `send_knock`, `invite`) and
for the stripped state that comes with invites and knocks (MSC4311, v1.16).

For each failure the spec asks for 400 `M_INVALID_PARAM`: an event of the
wrong type or membership, a sender not on the calling server, a wrong state
key, a failed signature or hash check.

`invite_room_state` and `knock_room_state` must hold the room's
`m.room.create` event and be full PDUs of the room's version, signed, of the
same room: a SHOULD from room version 12 (whose room id is the create
event's hash, so a full create event proves which room an invite is for)
and a MAY before it. We check from room version 12: the create event must
be there, and every entry sent as a PDU must be a valid, signed PDU of the
room. An entry in the older stripped form (type, state_key, content, sender
only) is still taken: Synapse (1.142, the peer of our interop tests) has not
implemented MSC4311 yet and sends stripped events, create included, so
refusing them would refuse every invite from it to a room of version 12.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from federation.keys import KeyRing
from federation.verification import verify_pdu_signatures
from homeserver.errors import MatrixError
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import Event, parse_event
from homeserver.events.hashing import check_content_hash
from homeserver.events.room_versions import RoomVersion

# The fields of a stripped state event (the form before MSC4311).
_STRIPPED_KEYS = frozenset({"type", "state_key", "content", "sender"})


def invalid(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def check_membership_event(event: Event, membership: str, origin: str, *, own: bool) -> None:
    """The event is `origin`'s user's `membership` event; with `own`, about
    the sender themself (join, leave, knock), else about someone else (invite)."""
    if event.type != "m.room.member":
        raise invalid(f"Not a {membership} event: the type is {event.type!r}")
    if event.content.get("membership") != membership:
        raise invalid(f"Not a {membership} event")
    if _server_of(event.sender) != origin:
        raise invalid("The event's sender is not a user of the calling server")
    if own and event.state_key != event.sender:
        raise invalid("The event's state_key is not its sender")


async def verify_signed(keys: KeyRing, event: Event) -> None:
    """Signatures, then the content hash: 400 M_INVALID_PARAM if either fails."""
    try:
        await verify_pdu_signatures(keys, event.pdu, event.room_version)
    except InvalidEventError as e:
        raise invalid(f"The event fails the signature check: {e}") from None
    if not check_content_hash(event.pdu):
        raise invalid("The event's content hash does not match")


def checks_stripped_state(room_version: RoomVersion) -> bool:
    """Whether this server checks the stripped state of the room version."""
    return room_version.room_id_from_create_event


async def check_stripped_state(
    keys: KeyRing, entries: Iterable[Mapping[str, Any]], room_id: str, room_version: RoomVersion
) -> None:
    """MSC4311: the create event is there; every entry sent as a PDU is a
    PDU of the room version, of this room, correctly signed. 400
    M_INVALID_PARAM otherwise."""
    has_create = False
    for entry in entries:
        if entry.get("type") == "m.room.create" and entry.get("state_key") == "":
            has_create = True
        if set(entry) <= _STRIPPED_KEYS:
            continue
        try:
            event = parse_event(entry, room_version)
        except InvalidEventError as e:
            raise invalid(
                f"A stripped state event is not a PDU of the room's version: {e}"
            ) from None
        if event.room_id != room_id:
            raise invalid("A stripped state event is from another room")
        await verify_signed(keys, event)
    if not has_create:
        raise invalid("The stripped state has no m.room.create event")
