"""Content hashes, reference hashes, and the ids derived from them.

The content hash covers the whole unredacted event, so a receiver can tell a
full copy from a redacted one. The reference hash covers the redacted event
(including the content hash), so it survives redaction; from room version 3 it
is the event id, and from room version 12 the create event's one is also the
room id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from homeserver.events.canonical import decode_base64, encode_base64, encode_canonical_json
from homeserver.events.errors import InvalidEventError
from homeserver.events.redaction import redact
from homeserver.events.room_versions import EventFormat, RoomVersion


def compute_content_hash(pdu: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical event without `unsigned`, `signatures` and `hashes`."""
    stripped = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def with_content_hash(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `pdu` whose `hashes.sha256` is its content hash (the step before signing)."""
    hashes = dict(pdu.get("hashes") or {})
    hashes["sha256"] = encode_base64(compute_content_hash(pdu))
    return {**pdu, "hashes": hashes}


def check_content_hash(pdu: Mapping[str, Any]) -> bool:
    """Whether `hashes.sha256` matches the event's content.

    A mismatch is not fatal: the spec says to assume the sender gave a redacted
    copy and to carry on with the redacted form, so this returns a bool.
    """
    hashes = pdu.get("hashes")
    claimed = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if not isinstance(claimed, str):
        return False
    try:
        claimed_bytes = decode_base64(claimed)
    except ValueError:
        return False
    return hmac.compare_digest(claimed_bytes, compute_content_hash(pdu))


def compute_reference_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 of the canonical redacted event without `signatures` and `unsigned`."""
    redacted = redact(pdu, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


def compute_event_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event id of `pdu`.

    Rooms 1 and 2 carry it in the `event_id` field. Later rooms derive it from
    the reference hash: standard base64 in room 3, URL-safe from room 4 on.
    """
    if room_version.event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise InvalidEventError("event_id is required in this room version")
        return event_id
    digest = compute_reference_hash(pdu, room_version)
    return "$" + encode_base64(digest, urlsafe=room_version.url_safe_event_ids)


def room_id_from_create_event(create_pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The room id a create event defines, in rooms whose ids are derived (v12+).

    It is the create event's id with "!" for "$": the URL-safe reference hash.
    """
    if not room_version.room_id_from_create_event:
        raise ValueError(f"room version {room_version.identifier} does not derive room ids")
    return "!" + encode_base64(compute_reference_hash(create_pdu, room_version), urlsafe=True)
