"""Signing and verifying JSON objects and events with server keys.

The cryptography and the byte-level signing format come from `signedjson`; this
module adds the Matrix rules on top: events are hashed and then signed in
their redacted form (so that redacted copies still verify), and which servers
must have signed an event depends on the room version and on the event.

Keys are found through a synchronous `KeyLookup` over keys already fetched, so
that the engine never waits on the network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from signedjson.key import is_signing_algorithm_supported
from signedjson.sign import SignatureVerifyException, verify_signed_json
from signedjson.sign import sign_json as _signedjson_sign
from signedjson.types import SigningKey, VerifyKey

from homeserver.events.errors import InvalidEventError, SignatureError
from homeserver.events.hashing import with_content_hash
from homeserver.events.redaction import redact
from homeserver.events.room_versions import EventFormat, RoomVersion

KeyLookup = Callable[[str, str], VerifyKey | None]
"""(server_name, key_id) -> the server's verify key, or None if unknown.

For an event in a room version that enforces key validity (v5+), the lookup
must also answer None for a key whose validity ended before the event's
`origin_server_ts` (see `key_validity_ts`): only then is the key "expired" in
the spec's sense and skipped.
"""


def sign_json(obj: Mapping[str, Any], server_name: str, signing_key: SigningKey) -> dict[str, Any]:
    """A copy of `obj` with `server_name`'s signature added to its `signatures`.

    Existing signatures (ours under another key id, or other servers') are kept.
    """
    signed = {**obj, "signatures": copy.deepcopy(obj.get("signatures", {}))}
    return _signedjson_sign(signed, server_name, signing_key)


def verify_json_signature(obj: Mapping[str, Any], server_name: str, lookup: KeyLookup) -> None:
    """Check that `server_name` has validly signed `obj` ("Checking for a signature").

    Signatures with algorithms we do not know, and keys the lookup does not
    know, are skipped; at least one must remain, and every remaining one must
    verify. Raises `SignatureError`.
    """
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureError("object has no signatures")
    by_server = signatures.get(server_name)
    if not isinstance(by_server, Mapping):
        raise SignatureError(f"no signature from {server_name}")
    checked = 0
    for key_id in by_server:
        if not is_signing_algorithm_supported(key_id):
            continue
        verify_key = lookup(server_name, key_id)
        if verify_key is None:
            continue
        try:
            verify_signed_json(dict(obj), server_name, verify_key)
        except SignatureVerifyException as e:
            raise SignatureError(f"bad signature from {server_name} with {key_id}") from e
        checked += 1
    if not checked:
        raise SignatureError(f"no signature from {server_name} with a known key")


def sign_event(
    pdu: Mapping[str, Any], server_name: str, signing_key: SigningKey, room_version: RoomVersion
) -> dict[str, Any]:
    """A copy of `pdu` with its content hash set and `server_name`'s signature added.

    The signature covers the redacted event, which still includes the content
    hash, so it verifies on both full and redacted copies.
    """
    hashed = with_content_hash(pdu)
    signed_redacted = sign_json(redact(hashed, room_version), server_name, signing_key)
    return {**hashed, "signatures": signed_redacted["signatures"]}


def required_signature_servers(pdu: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The servers whose signatures an event must carry.

    - The sender's server, except on an invite made from a third-party invite:
      the spec lets another server send those, and the auth rules check the
      invite's own `signed` block instead.
    - Rooms 1 and 2: also the server in the event id.
    - Rooms 8+: for a membership event naming `join_authorised_via_users_server`,
      that user's server (auth rule: "validly signed by the homeserver of the
      user ID denoted by the key").

    Raises `InvalidEventError` when an id the rule needs has no server name.
    """
    servers: set[str] = set()
    content = pdu.get("content")
    content = content if isinstance(content, Mapping) else {}
    is_member = pdu.get("type") == "m.room.member"
    if not (
        is_member and content.get("membership") == "invite" and "third_party_invite" in content
    ):
        servers.add(_server_of(pdu.get("sender"), "sender"))
    if room_version.event_format is EventFormat.V1:
        servers.add(_server_of(pdu.get("event_id"), "event_id"))
    if (
        room_version.restricted_join_rule
        and is_member
        and "join_authorised_via_users_server" in content
    ):
        authoriser = content["join_authorised_via_users_server"]
        servers.add(_server_of(authoriser, "join_authorised_via_users_server"))
    return servers


def key_validity_ts(pdu: Mapping[str, Any], room_version: RoomVersion) -> int | None:
    """The time at which the signing keys of `pdu` must be valid, if the room checks that.

    Room versions 5+ require a key's `valid_until_ts` to be at least the event's
    `origin_server_ts`; earlier ones accept expired keys (None).
    """
    if not room_version.enforce_key_validity:
        return None
    ts = pdu.get("origin_server_ts")
    if type(ts) is not int:
        raise InvalidEventError("origin_server_ts must be an integer")
    return ts


def verify_event_signatures(
    pdu: Mapping[str, Any], room_version: RoomVersion, lookup: KeyLookup
) -> None:
    """Check every signature the spec requires on `pdu`; raise `InvalidEventError` if one fails.

    The check runs on the redacted event, so it succeeds on a redacted copy too.
    Build `lookup` with `key_validity_ts` in mind. Hashes are checked
    separately (`hashing.check_content_hash`), after this.
    """
    redacted = redact(pdu, room_version)
    for server_name in sorted(required_signature_servers(pdu, room_version)):
        try:
            verify_json_signature(redacted, server_name, lookup)
        except SignatureError as e:
            raise InvalidEventError(f"signature check failed: {e}") from e


def _server_of(identifier: object, field: str) -> str:
    """The server name of "&localpart:server"; the localpart may hold no ':'."""
    if isinstance(identifier, str):
        _, sep, server = identifier.partition(":")
        if sep and server:
            return server
    raise InvalidEventError(f"{field} has no server name: {identifier!r}")
