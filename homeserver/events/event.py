"""The PDU as an immutable value, and the check that turns a PDU dict into one.

An `Event` keeps the exact PDU dict it was built from (`pdu`) next to the
fields the engine reads often, so that the signed JSON can be re-serialised
byte for byte while auth rules and state resolution read plain attributes.

`parse_event` is the only way from untrusted JSON to an `Event`: it enforces
the room version's event format, the spec's size limits and identifier
grammar, and computes the event id. It does not check signatures, hashes or
authorization; those come next in the pipeline (`signing`, `hashing`, `auth`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from homeserver.events.canonical import check_json_value, encode_canonical_json
from homeserver.events.errors import EventTooLargeError, InvalidEventError, InvalidJSONError
from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import EventFormat, RoomVersion

StateKey = tuple[str, str]


@attrs.frozen(slots=True, eq=False)
class Event:
    event_id: str
    room_version: RoomVersion
    room_id: str
    type: str
    state_key: str | None
    sender: str
    content: Mapping[str, Any]
    prev_event_ids: tuple[str, ...]
    auth_event_ids: tuple[str, ...]
    depth: int
    origin_server_ts: int
    # Top-level "redacts" in rooms 1-10, content.redacts from room 11 on.
    redacts: str | None
    pdu: Mapping[str, Any] = attrs.field(repr=False)

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    @property
    def state_tuple(self) -> StateKey:
        """(type, state_key) of a state event; only meaningful when is_state."""
        assert self.state_key is not None
        return (self.type, self.state_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)


MAX_PDU_BYTES = 65536
"""Largest PDU, as canonical JSON including signatures."""
MAX_ID_BYTES = 255
"""Largest sender, room_id, event_id, type and state_key, in UTF-8 bytes."""
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10


def max_depth(room_version: RoomVersion) -> int:
    """The depth cap: 2**63-1, or 2**53-1 where canonical JSON limits integers (v6+)."""
    return 2**53 - 1 if room_version.strict_canonicaljson else 2**63 - 1


_SERVER_NAME = re.compile(r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::[0-9]{1,5})?")
# A reference hash (32 bytes) in unpadded base64 is 43 characters.
_HASH_ID = {
    EventFormat.V2: re.compile(r"[A-Za-z0-9+/]{43}"),
    EventFormat.V3: re.compile(r"[A-Za-z0-9_-]{43}"),
}


def is_server_name(text: str) -> bool:
    """Whether `text` follows the spec's server name grammar (hostname [":" port])."""
    return _SERVER_NAME.fullmatch(text) is not None


def is_namespaced_id(text: str, sigil: str) -> bool:
    """Whether `text` is `sigil` + localpart + ":" + server name.

    The localpart is as loose as the spec's historical grammar, which servers
    must still accept in events: anything but ':' and NUL.
    """
    if not text.startswith(sigil):
        return False
    localpart, sep, server = text[1:].partition(":")
    return bool(sep) and "\x00" not in localpart and is_server_name(server)


def is_user_id(text: str) -> bool:
    """User id grammar as events must accept it (historical localparts included)."""
    return len(text.encode("utf-8")) <= MAX_ID_BYTES and is_namespaced_id(text, "@")


def is_event_id(text: str, room_version: RoomVersion) -> bool:
    """Event id grammar: "$opaque:server" in rooms 1-2, "$" + a hash after."""
    if room_version.event_format is EventFormat.V1:
        return len(text.encode("utf-8")) <= MAX_ID_BYTES and is_namespaced_id(text, "$")
    pattern = _HASH_ID[room_version.event_format]
    return text.startswith("$") and pattern.fullmatch(text, 1) is not None


def is_room_id(text: str, room_version: RoomVersion) -> bool:
    """Room id grammar: "!opaque:server" before room 12, "!" + a URL-safe hash from it."""
    if room_version.room_id_from_create_event:
        return text.startswith("!") and _HASH_ID[EventFormat.V3].fullmatch(text, 1) is not None
    return len(text.encode("utf-8")) <= MAX_ID_BYTES and is_namespaced_id(text, "!")


def is_create_event(pdu: Mapping[str, Any]) -> bool:
    """Whether `pdu` is a room's create event, the one event without a room_id in v12."""
    return pdu.get("type") == "m.room.create" and pdu.get("state_key") == ""


def parse_event(
    pdu: Mapping[str, Any], room_version: RoomVersion, *, event_id: str | None = None
) -> Event:
    """Validate `pdu` against `room_version`'s event format and return it as an `Event`.

    `event_id`, when given, is the id the caller expects (for example the one
    it asked a remote server for); a different id is an error. In room 12 the
    create event carries no `room_id`: its room id is derived from its hash.
    Raises `InvalidEventError`: such an event is dropped, not rejected.
    """
    if not isinstance(pdu, Mapping):
        raise InvalidEventError("a PDU must be a JSON object")
    try:
        check_json_value(pdu, strict=room_version.strict_canonicaljson)
    except InvalidJSONError as e:
        raise InvalidEventError(str(e)) from e
    size = len(encode_canonical_json(pdu))
    if size > MAX_PDU_BYTES:
        raise EventTooLargeError(f"event is {size} bytes, over the {MAX_PDU_BYTES} byte limit")

    event_type = _short_string(pdu, "type")
    state_key = pdu.get("state_key")
    if state_key is not None:
        state_key = _short_string(pdu, "state_key")
    sender = pdu.get("sender")
    if not isinstance(sender, str) or not is_user_id(sender):
        raise InvalidEventError(f"sender is not a valid user id: {sender!r}")
    content = pdu.get("content")
    if not isinstance(content, Mapping):
        raise InvalidEventError("content must be an object")
    depth = pdu.get("depth")
    if type(depth) is not int or not 0 <= depth <= max_depth(room_version):
        raise InvalidEventError(f"depth must be an integer in [0, {max_depth(room_version)}]")
    origin_server_ts = pdu.get("origin_server_ts")
    if type(origin_server_ts) is not int or not -(2**63) <= origin_server_ts < 2**63:
        raise InvalidEventError("origin_server_ts must be a 64-bit integer")
    _check_hashes_and_signatures(pdu)
    if "unsigned" in pdu and not isinstance(pdu["unsigned"], Mapping):
        raise InvalidEventError("unsigned must be an object")
    prev_ids = _event_refs(pdu, "prev_events", MAX_PREV_EVENTS, room_version)
    auth_ids = _event_refs(pdu, "auth_events", MAX_AUTH_EVENTS, room_version)

    computed_id = compute_event_id(pdu, room_version)
    if not is_event_id(computed_id, room_version):
        raise InvalidEventError(f"event_id is not valid in this room version: {computed_id!r}")
    if event_id is not None and event_id != computed_id:
        raise InvalidEventError(f"expected event {event_id}, got {computed_id}")

    if room_version.room_id_from_create_event and is_create_event(pdu):
        if "room_id" in pdu:
            raise InvalidEventError("a create event in this room version has no room_id")
        room_id = "!" + computed_id[1:]
    else:
        room_id = pdu.get("room_id")
        if not isinstance(room_id, str) or not is_room_id(room_id, room_version):
            raise InvalidEventError(f"room_id is not valid in this room version: {room_id!r}")

    return Event(
        event_id=computed_id,
        room_version=room_version,
        room_id=room_id,
        type=event_type,
        state_key=state_key,
        sender=sender,
        content=content,
        prev_event_ids=prev_ids,
        auth_event_ids=auth_ids,
        depth=depth,
        origin_server_ts=origin_server_ts,
        redacts=_redacts(pdu, content, room_version),
        pdu=pdu,
    )


def _short_string(pdu: Mapping[str, Any], key: str) -> str:
    value = pdu.get(key)
    if not isinstance(value, str):
        raise InvalidEventError(f"{key} must be a string")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise EventTooLargeError(f"{key} is longer than {MAX_ID_BYTES} bytes")
    return value


def _check_hashes_and_signatures(pdu: Mapping[str, Any]) -> None:
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping) or not isinstance(hashes.get("sha256"), str):
        raise InvalidEventError("hashes must be an object with a sha256 string")
    signatures = pdu.get("signatures")
    if not isinstance(signatures, Mapping) or not all(
        isinstance(by_key, Mapping) and all(isinstance(sig, str) for sig in by_key.values())
        for by_key in signatures.values()
    ):
        raise InvalidEventError("signatures must map server names to {key id: signature}")


def _event_refs(
    pdu: Mapping[str, Any], key: str, limit: int, room_version: RoomVersion
) -> tuple[str, ...]:
    """The ids in prev_events / auth_events; rooms 1-2 list [id, {hashes}] pairs."""
    refs = pdu.get(key)
    if not isinstance(refs, Sequence) or isinstance(refs, str):
        raise InvalidEventError(f"{key} must be a list")
    if len(refs) > limit:
        raise InvalidEventError(f"{key} lists {len(refs)} events, more than {limit}")
    ids = []
    for ref in refs:
        if room_version.event_format is EventFormat.V1:
            if not (
                isinstance(ref, Sequence)
                and not isinstance(ref, str)
                and len(ref) == 2
                and isinstance(ref[1], Mapping)
            ):
                raise InvalidEventError(f"{key} entries must be [event_id, hashes] pairs")
            ref = ref[0]
        if not isinstance(ref, str) or not is_event_id(ref, room_version):
            raise InvalidEventError(f"{key} holds an invalid event id: {ref!r}")
        ids.append(ref)
    return tuple(ids)


def _redacts(
    pdu: Mapping[str, Any], content: Mapping[str, Any], room_version: RoomVersion
) -> str | None:
    """The target of a redaction: top-level before room 11, in content from it."""
    if pdu.get("type") != "m.room.redaction":
        return None
    holder = content if room_version.updated_redaction_rules else pdu
    redacts = holder.get("redacts")
    if redacts is None:
        return None
    if not isinstance(redacts, str) or not is_event_id(redacts, room_version):
        raise InvalidEventError(f"redacts is not a valid event id: {redacts!r}")
    return redacts


def load_stored_event(
    pdu: Mapping[str, Any], room_version: RoomVersion, event_id: str, room_id: str
) -> Event:
    """An Event from JSON this server checked before it stored it.

    Skips validation and hashing: reading events back is the hottest path of
    the server, and they were validated on the way in.
    """
    v1 = room_version.event_format is EventFormat.V1

    def refs(key: str) -> tuple[str, ...]:
        return tuple(ref[0] if v1 else ref for ref in pdu.get(key, ()))

    content = pdu["content"]
    redacts = None
    if pdu["type"] == "m.room.redaction":
        redacts = (content if room_version.updated_redaction_rules else pdu).get("redacts")
    return Event(
        event_id=event_id,
        room_version=room_version,
        room_id=room_id,
        type=pdu["type"],
        state_key=pdu.get("state_key"),
        sender=pdu["sender"],
        content=content,
        prev_event_ids=refs("prev_events"),
        auth_event_ids=refs("auth_events"),
        depth=pdu["depth"],
        origin_server_ts=pdu["origin_server_ts"],
        redacts=redacts,
        pdu=pdu,
    )
