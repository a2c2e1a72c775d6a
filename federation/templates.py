"""Membership templates for other servers' users (make_join, make_leave,
make_knock): one way to build them on a room's head and to check that the
room would accept the event, so the three handshakes cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from signedjson.types import SigningKey

from homeserver.errors import MatrixError, forbidden
from homeserver.events.auth import auth_types_for_event, check_auth
from homeserver.events.canonical import encode_base64
from homeserver.events.errors import AuthError, InvalidEventError
from homeserver.events.event import Event, max_depth, parse_event
from homeserver.events.hashing import compute_reference_hash
from homeserver.events.room_versions import EventFormat, RoomVersion
from homeserver.events.signing import sign_event
from storage.database import now_ms
from storage.events import EventStore
from storage.federation_reads import FederationReadStore
from storage.state import StateKey

MAX_PREV_EVENTS = 20


def reference(event: Event) -> str | list[Any]:
    """How a PDU points at another event: its id, or in rooms 1-2 [id, {sha256: hash}]."""
    if event.room_version.event_format is EventFormat.V1:
        digest = compute_reference_hash(event.pdu, event.room_version)
        return [event.event_id, {"sha256": encode_base64(digest)}]
    return event.event_id


@attrs.frozen
class RoomHead:
    """A room's current state and forward extremities, loaded for a template."""

    state: Mapping[StateKey, Event]
    prev_events: list[str | list[Any]]
    depth: int


async def room_head(
    events: EventStore, read_store: FederationReadStore, room_id: str, room_version: RoomVersion
) -> RoomHead:
    state_ids = await events.current_state_ids(room_id)
    extremities = (await read_store.extremities(room_id))[:MAX_PREV_EVENTS]
    loaded = await events.get_events({*state_ids.values(), *(e for e, _ in extremities)})
    return RoomHead(
        state={k: loaded[i].event for k, i in state_ids.items() if i in loaded},
        prev_events=[reference(loaded[e].event) for e, _ in extremities],
        depth=min(max(d for _, d in extremities) + 1, max_depth(room_version)),
    )


def membership_template(
    room_version: RoomVersion,
    room_id: str,
    user_id: str,
    content: Mapping[str, Any],
    head: RoomHead,
    *,
    server_name: str,
    signing_key: SigningKey,
) -> dict[str, Any]:
    """An unsigned membership event of `user_id` on the room's head; 403 if the
    room's current state would refuse it.

    The check authorises a copy signed by us: the auth rules need a parsed
    event, and only the joining server's signature is missing from it.
    """
    draft = {
        "type": "m.room.member",
        "state_key": user_id,
        "sender": user_id,
        "content": dict(content),
    }
    keys = sorted(auth_types_for_event(room_version, draft))
    template: dict[str, Any] = {
        **draft,
        "room_id": room_id,
        "prev_events": head.prev_events,
        "auth_events": [reference(head.state[k]) for k in keys if k in head.state],
        "depth": head.depth,
        # The spec's template names the resident server as its origin.
        "origin": server_name,
        "origin_server_ts": now_ms(),
    }
    membership = content.get("membership")
    trial = dict(template)
    if room_version.event_format is EventFormat.V1:
        trial["event_id"] = f"$make_{membership}:{server_name}"
    try:
        event = parse_event(sign_event(trial, server_name, signing_key, room_version), room_version)
        check_auth(room_version, event, head.state)
    except AuthError as e:
        raise forbidden(f"You may not {membership} this room: {e.message}") from None
    except InvalidEventError as e:
        raise MatrixError(500, "M_UNKNOWN", f"Cannot build the event: {e}") from None
    return template
