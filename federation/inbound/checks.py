"""The first checks of a PDU from another server, before anything is stored.

Format per room version, the signatures the spec requires (the sender's
server, and in rooms 1-2 the event id's server), then the content hash: a PDU
whose content does not match its hash is assumed to be a redacted copy and
carries on in its redacted form (spec, "Checks performed on receipt of a PDU").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.keys import KeyRing
from federation.verification import verify_pdu_signatures
from homeserver.events.event import Event, parse_event
from homeserver.events.hashing import check_content_hash
from homeserver.events.redaction import redact
from homeserver.events.room_versions import RoomVersion


async def checked_event(
    keys: KeyRing,
    pdu: Mapping[str, Any],
    room_version: RoomVersion,
    *,
    event_id: str | None = None,
) -> Event:
    """The PDU as an Event, redacted if its content hash fails; raises
    InvalidEventError for a malformed or badly signed PDU (dropped, not stored)."""
    pdu = {k: v for k, v in pdu.items() if k != "unsigned"}
    event = parse_event(pdu, room_version, event_id=event_id)
    await verify_pdu_signatures(keys, pdu, room_version)
    if not check_content_hash(pdu):
        event = parse_event(redact(pdu, room_version), room_version, event_id=event.event_id)
    return event
