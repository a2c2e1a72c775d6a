"""The room writes one process hands to a room's owner, as JSON.

Each `WriteOp` is one entry point of the event pipeline
(homeserver/rooms/pipeline.py) that moves a room's head or stream: its
parameters, each with a `Kind` that turns the value into JSON and back
(checking what comes in: a bad body is refused with 400 M_BAD_JSON before
anything runs), the parameter naming the room (whose owner runs it) and the
kind of its result. Events travel as {pdu, room_version} and are parsed
again on arrival, so that a body that is no valid event never reaches the
pipeline; state maps travel as lists of [type, state_key, event_id].

`store_outliers` is no operation: it stores auth events and state without a
stream position and moves no room head (rooms/outliers.py), so it runs where
it is called, serialised with the owner's writes by the room's lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from homeserver.errors import bad_json
from homeserver.events.errors import InvalidEventError
from homeserver.events.event import Event, parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.remote_events import Reception
from storage.events import StoredEvent


@attrs.frozen
class Kind:
    """How one value travels: `decode` raises MatrixError 400 on a bad one."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any, str], Any]


def _same(value: Any) -> Any:
    return value


def _checked(test: Callable[[Any], bool], what: str) -> Callable[[Any, str], Any]:
    def decode(value: Any, name: str) -> Any:
        if not test(value):
            raise bad_json(f"{name} must be {what}")
        return value

    return decode


def _event_to_json(event: Event) -> dict[str, Any]:
    return {"pdu": event.pdu, "room_version": event.room_version.identifier}


def _event_from_json(value: Any, name: str) -> Event:
    if not isinstance(value, dict) or value.get("room_version") not in KNOWN_ROOM_VERSIONS:
        raise bad_json(f"{name} must be {{pdu, room_version}} of a known room version")
    try:
        return parse_event(value.get("pdu"), KNOWN_ROOM_VERSIONS[value["room_version"]])
    except InvalidEventError as e:
        raise bad_json(f"{name} is no valid event: {e}") from None


def _events_from_json(value: Any, name: str) -> list[Event]:
    if not isinstance(value, list):
        raise bad_json(f"{name} must be a list")
    return [_event_from_json(v, name) for v in value]


def _txn_from_json(value: Any, name: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(t, str) for t in value)):
        raise bad_json(f"{name} must be [device id, transaction id]")
    return (value[0], value[1])


def _state_maps_to_json(maps: Mapping[str, Mapping[tuple[str, str], str]] | None) -> Any:
    if maps is None:
        return None
    return {prev: [[t, k, i] for (t, k), i in m.items()] for prev, m in maps.items()}


def _state_maps_from_json(value: Any, name: str) -> dict[str, dict[tuple[str, str], str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_json(f"{name} must be an object")
    maps: dict[str, dict[tuple[str, str], str]] = {}
    for prev, rows in value.items():
        if not isinstance(rows, list) or not all(
            isinstance(r, list) and len(r) == 3 and all(isinstance(x, str) for x in r) for r in rows
        ):
            raise bad_json(f"{name} must map event ids to [[type, state_key, event_id]]")
        maps[prev] = {(t, k): i for t, k, i in rows}
    return maps


STR = Kind(_same, _checked(lambda v: isinstance(v, str), "a string"))
OPT_STR = Kind(_same, _checked(lambda v: v is None or isinstance(v, str), "a string"))
OBJECT = Kind(_same, _checked(lambda v: isinstance(v, dict), "an object"))
OPT_INT = Kind(_same, _checked(lambda v: v is None or type(v) is int, "an integer"))
OPT_OBJECTS = Kind(
    _same,
    _checked(
        lambda v: v is None or (isinstance(v, list) and all(isinstance(x, dict) for x in v)),
        "a list of objects",
    ),
)
TXN = Kind(lambda v: list(v) if v is not None else None, _txn_from_json)
EVENT = Kind(_event_to_json, _event_from_json)
EVENTS = Kind(lambda v: [_event_to_json(e) for e in v], _events_from_json)
STATE_MAPS = Kind(_state_maps_to_json, _state_maps_from_json)


def stored_to_json(stored: StoredEvent | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    return {
        **_event_to_json(stored.event),
        "stream_ordering": stored.stream_ordering,
        "state_group": stored.state_group,
        "replaces_state": stored.replaces_state,
        "rejected_reason": stored.rejected_reason,
        "txn_device_id": stored.txn_device_id,
        "txn_id": stored.txn_id,
    }


def stored_from_json(body: Any, name: str) -> StoredEvent | None:
    """The owner's answer; its PDU is checked like any other (a wrong
    secret's or a confused peer's answer is refused, not stored)."""
    if body is None:
        return None
    try:
        return StoredEvent(
            _event_from_json(body, name),
            int(body["stream_ordering"]),
            body["state_group"],
            body["replaces_state"],
            body["rejected_reason"],
            body["txn_device_id"],
            body["txn_id"],
        )
    except (KeyError, TypeError, ValueError) as e:
        raise bad_json(f"{name} is no stored event: {e}") from None


def _reception_from_json(body: Any, name: str) -> Reception:
    try:
        return Reception(body["event_id"], body["rejected_reason"], bool(body["soft_failed"]))
    except (KeyError, TypeError) as e:
        raise bad_json(f"{name} is no reception: {e}") from None


STORED = Kind(stored_to_json, stored_from_json)
RECEPTION = Kind(attrs.asdict, _reception_from_json)


@attrs.frozen
class WriteOp:
    """One pipeline entry point run at the room's owner."""

    name: str
    params: Mapping[str, Kind]
    # The parameter naming the room: a room id, or an event of the room.
    room_param: str
    result: Kind
    # How long the owner may take: a join to a big room stores its whole
    # state and auth chain.
    timeout_s: float = 60.0

    def room_of(self, args: Mapping[str, Any]) -> str:
        value = args[self.room_param]
        return value if isinstance(value, str) else value.room_id

    def args_to_json(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {name: kind.encode(args[name]) for name, kind in self.params.items()}

    def args_from_json(self, body: Any) -> dict[str, Any]:
        """The pipeline method's arguments from a forwarded body, checked."""
        if not isinstance(body, dict):
            raise bad_json("expected a JSON object")
        unknown = set(body) - set(self.params)
        if unknown:
            raise bad_json(f"unknown arguments: {', '.join(sorted(unknown))}")
        return {name: kind.decode(body.get(name), name) for name, kind in self.params.items()}


_RECEIVED = {"event": EVENT, "prev_states": STATE_MAPS}

OPERATIONS: dict[str, WriteOp] = {
    op.name: op
    for op in (
        WriteOp(
            "send",
            {
                "room_id": STR,
                "type": STR,
                "sender": STR,
                "content": OBJECT,
                "state_key": OPT_STR,
                "redacts": OPT_STR,
                "txn": TXN,
                "origin_server_ts": OPT_INT,
            },
            "room_id",
            STORED,
        ),
        WriteOp("commit_create", {"create": EVENT, "creator": STR}, "create", STORED),
        WriteOp("receive_remote", _RECEIVED, "event", RECEPTION),
        WriteOp("receive_backfilled", _RECEIVED, "event", RECEPTION),
        WriteOp("accept_remote", {"event": EVENT}, "event", STORED),
        WriteOp(
            "join_remote_room",
            {"join": EVENT, "state": EVENTS, "auth_chain": EVENTS, "creator": STR},
            "join",
            STORED,
            timeout_s=600.0,
        ),
        WriteOp(
            "store_out_of_band_member",
            {"event": EVENT, "creator": STR, "stripped_state": OPT_OBJECTS},
            "event",
            STORED,
        ),
        WriteOp("leave_out_of_band", {"member": EVENT, "content": OBJECT}, "member", STORED),
    )
}

# The pipeline methods an event persister runs forwarded writes with, by
# operation name.
LocalWrites = Mapping[str, Callable[..., Awaitable[Any]]]
