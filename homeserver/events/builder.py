"""Building new local events: auth event selection, depth, hashing and signing.

The result goes through `parse_event` like any event from federation, so a
locally built event obeys exactly the same format and size rules.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from signedjson.types import SigningKey

from homeserver.events.auth import auth_types_for_event
from homeserver.events.canonical import check_json_value, encode_base64
from homeserver.events.errors import InvalidEventError, InvalidJSONError
from homeserver.events.event import Event, max_depth, parse_event
from homeserver.events.hashing import compute_reference_hash
from homeserver.events.room_versions import EventFormat, RoomVersion
from homeserver.events.signing import sign_event

StateLookup = Callable[[str, str], Event | None]
"""(type, state_key) -> the event in the room's current state, or None."""


def build_event(
    room_version: RoomVersion,
    *,
    room_id: str,
    type: str,
    sender: str,
    content: Mapping[str, Any],
    state_key: str | None = None,
    redacts: str | None = None,
    prev_events: Sequence[Event],
    state: StateLookup,
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
) -> Event:
    """Build, hash and sign a new event on top of `prev_events` (the forward extremities).

    Auth events are chosen from `state`, the room's current state. Raises
    `InvalidEventError` if the result breaks the event format (too big, too
    many prev events, bad ids): choosing what to send is the caller's job.
    """
    if not prev_events:
        raise ValueError("only the create event has no prev_events; use build_create_event")
    draft = {"type": type, "state_key": state_key, "sender": sender, "content": content}
    # Sorted, so that the same state always gives the same auth_events.
    selected = sorted(auth_types_for_event(room_version, draft))
    auth_events = [event for event in (state(*key) for key in selected) if event is not None]
    content = dict(content)
    pdu: dict[str, Any] = {
        "room_id": room_id,
        "type": type,
        "sender": sender,
        "content": content,
        "prev_events": [_reference(event, room_version) for event in prev_events],
        "auth_events": [_reference(event, room_version) for event in auth_events],
        "depth": min(max(event.depth for event in prev_events) + 1, max_depth(room_version)),
        "origin_server_ts": origin_server_ts,
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.updated_redaction_rules:
            content["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    return _finish(pdu, room_version, server_name, signing_key)


def build_create_event(
    room_version: RoomVersion,
    *,
    sender: str,
    content: Mapping[str, Any],
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
    room_id: str | None = None,
) -> Event:
    """Build and sign a room's `m.room.create` event; its `room_id` is the room's id.

    Before room 12 the caller chooses the room id ("!opaque:server_name"). From
    room 12 the room id is derived from this event's hash, so `room_id` must be
    None and the PDU carries none.
    """
    if room_version.room_id_from_create_event != (room_id is None):
        raise ValueError(
            f"room version {room_version.identifier}: room_id must "
            + ("not " if room_version.room_id_from_create_event else "")
            + "be given for the create event"
        )
    pdu: dict[str, Any] = {
        "type": "m.room.create",
        "state_key": "",
        "sender": sender,
        "content": dict(content),
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
        "origin_server_ts": origin_server_ts,
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    return _finish(pdu, room_version, server_name, signing_key)


def _reference(event: Event, room_version: RoomVersion) -> str | list[Any]:
    """How a PDU points at another event: its id, or in rooms 1-2 [id, {sha256: hash}]."""
    if room_version.event_format is EventFormat.V1:
        digest = compute_reference_hash(event.pdu, room_version)
        return [event.event_id, {"sha256": encode_base64(digest)}]
    return event.event_id


def _finish(
    pdu: dict[str, Any], room_version: RoomVersion, server_name: str, signing_key: SigningKey
) -> Event:
    """Give the PDU its id (rooms 1-2 only), hash and sign it, and validate the result.

    The content of what this server signs holds only canonical JSON numbers
    (integers in [-(2**53)+1, 2**53-1]) in every room version: floats and
    larger integers hash differently from one implementation to the next.
    Events of other servers in rooms 1-5, which predate that rule, are still
    read leniently (`parse_event`); so is the depth of a room 1-5 event here.
    """
    try:
        check_json_value(pdu["content"], strict=True)
    except InvalidJSONError as e:
        raise InvalidEventError(str(e)) from e
    if room_version.event_format is EventFormat.V1:
        pdu["event_id"] = f"${secrets.token_urlsafe(18)}:{server_name}"
    return parse_event(sign_event(pdu, server_name, signing_key, room_version), room_version)
