"""Checking the signatures of an event from another server with the key ring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signedjson.types import VerifyKey

from federation.keys import KeyRing
from homeserver.events.room_versions import RoomVersion
from homeserver.events.signing import (
    key_validity_ts,
    required_signature_servers,
    verify_event_signatures,
)


async def verify_pdu_signatures(
    keys: KeyRing, pdu: Mapping[str, Any], room_version: RoomVersion
) -> None:
    """Raise InvalidEventError unless every signature the spec requires verifies.

    Keys are fetched as needed; from room 5 on they must have been valid at
    the event's origin_server_ts.
    """
    at_ts = key_validity_ts(pdu, room_version) or 0
    signatures = pdu.get("signatures")
    found: dict[tuple[str, str], VerifyKey] = {}
    for server in required_signature_servers(pdu, room_version):
        by_server = signatures.get(server) if isinstance(signatures, Mapping) else None
        key_ids = list(by_server) if isinstance(by_server, Mapping) else []
        for key_id, key in (await keys.verify_keys(server, key_ids, at_ts)).items():
            found[(server, key_id)] = key
    verify_event_signatures(pdu, room_version, lambda server, key_id: found.get((server, key_id)))
