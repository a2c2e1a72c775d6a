"""The room writes handed to a room's owner, as JSON (cluster/write_ops.py):
each operation's arguments and result survive the trip, a bad body is
refused with 400 M_BAD_JSON, and each operation names exactly the
parameters of the pipeline method it stands for. The endpoint itself, over
HTTP in a deployment, is test_forwarding.py's."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from signedjson.key import generate_signing_key

from homeserver.cluster.write_ops import OPERATIONS
from homeserver.errors import MatrixError
from homeserver.events.builder import build_create_event, build_event
from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.local_events import LocalEvents
from homeserver.rooms.outliers import Outliers
from homeserver.rooms.remote_events import Reception, RemoteEvents
from homeserver.rooms.remote_joins import RemoteJoins
from storage.events import StoredEvent

KEY = generate_signing_key("t")
ALICE = "@alice:example.org"

PIPELINE_METHODS = {
    "send": LocalEvents.send,
    "commit_create": LocalEvents.commit_create,
    "receive_remote": RemoteEvents.receive_remote,
    "receive_backfilled": RemoteEvents.receive_backfilled,
    "accept_remote": RemoteJoins.accept_remote,
    "join_remote_room": RemoteJoins.join_remote_room,
    "store_out_of_band_member": Outliers.store_out_of_band_member,
    "leave_out_of_band": Outliers.leave_out_of_band,
}


def room(version: str) -> tuple[Event, Event]:
    """A create event and the creator's join, signed."""
    room_version = KNOWN_ROOM_VERSIONS[version]
    create = build_create_event(
        room_version,
        sender=ALICE,
        content={"room_version": version}
        if room_version.implicit_room_creator
        else {"room_version": version, "creator": ALICE},
        origin_server_ts=1_700_000_000_000,
        server_name="example.org",
        signing_key=KEY,
        room_id=None if room_version.room_id_from_create_event else "!r:example.org",
    )
    join = build_event(
        room_version,
        room_id=create.room_id,
        type="m.room.member",
        sender=ALICE,
        content={"membership": "join"},
        state_key=ALICE,
        prev_events=[create],
        state=lambda t, k: create if (t, k) == ("m.room.create", "") else None,
        origin_server_ts=1_700_000_000_001,
        server_name="example.org",
        signing_key=KEY,
    )
    return create, join


def examples(version: str) -> dict[str, dict[str, Any]]:
    """Arguments of every operation."""
    create, join = room(version)
    state = {(join.type, join.state_key or ""): join.event_id}
    return {
        "send": {
            "room_id": create.room_id,
            "type": "m.room.message",
            "sender": ALICE,
            "content": {"msgtype": "m.text", "body": "hi"},
            "state_key": None,
            "redacts": None,
            "txn": ("DEVICE", "txn1"),
            "origin_server_ts": 5,
        },
        "commit_create": {"create": create, "creator": ALICE},
        "receive_remote": {"event": join, "prev_states": {create.event_id: state}},
        "receive_backfilled": {"event": join, "prev_states": None},
        "accept_remote": {"event": join},
        "join_remote_room": {
            "join": join,
            "state": [create],
            "auth_chain": [create],
            "creator": ALICE,
        },
        "store_out_of_band_member": {
            "event": join,
            "creator": ALICE,
            "stripped_state": [{"type": "m.room.name", "content": {"name": "x"}}],
        },
        "leave_out_of_band": {"member": join, "content": {"reason": "no"}},
    }


def comparable(value: Any) -> Any:
    if isinstance(value, Event):
        return (value.event_id, value.room_id, value.room_version.identifier)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_every_operation_names_its_pipeline_method_parameters() -> None:
    assert set(OPERATIONS) == set(PIPELINE_METHODS)
    for name, op in OPERATIONS.items():
        params = list(inspect.signature(PIPELINE_METHODS[name]).parameters)
        assert params == ["self", *op.params], name


@pytest.mark.parametrize("version", ["10", "12"])
def test_arguments_survive_the_trip(version: str) -> None:
    for name, args in examples(version).items():
        op = OPERATIONS[name]
        body = json.loads(json.dumps(op.args_to_json(args)))
        back = op.args_from_json(body)
        assert {k: comparable(v) for k, v in back.items()} == {
            k: comparable(v) for k, v in args.items()
        }, name
        assert op.room_of(back) == op.room_of(args) == room(version)[0].room_id


def test_results_survive_the_trip() -> None:
    create, join = room("12")
    stored = StoredEvent(join, 7, 3, None, None, "DEVICE", "txn1")
    send = OPERATIONS["send"].result
    back = send.decode(json.loads(json.dumps(send.encode(stored))), "result")
    assert back is not None and back.event.event_id == join.event_id
    assert (back.stream_ordering, back.state_group, back.txn_id) == (7, 3, "txn1")
    # A taken room id: commit_create's None.
    create_result = OPERATIONS["commit_create"].result
    assert create_result.decode(create_result.encode(None), "result") is None
    reception = Reception(join.event_id, "refused", False)
    received = OPERATIONS["receive_remote"].result
    assert received.decode(json.loads(json.dumps(received.encode(reception))), "r") == reception


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("send", {"room_id": 5}),
        ("send", {"content": "hi"}),
        ("send", {"txn": ["only-a-device"]}),
        ("send", {"origin_server_ts": True}),
        ("send", {"on_behalf_of": "@admin:example.org"}),
        ("commit_create", {"create": {"pdu": {}, "room_version": "12"}}),
        ("commit_create", {"create": {"room_version": "nope"}}),
        ("receive_remote", {"prev_states": {"$e": [["m.room.member", "@a:b"]]}}),
        ("receive_remote", {"prev_states": []}),
        ("join_remote_room", {"state": {}}),
        ("join_remote_room", {"auth_chain": [None]}),
        ("store_out_of_band_member", {"stripped_state": ["x"]}),
        ("leave_out_of_band", {"content": None}),
    ],
)
def test_bad_arguments_refused(name: str, change: dict[str, Any]) -> None:
    op = OPERATIONS[name]
    body = {**op.args_to_json(examples("10")[name]), **change}
    with pytest.raises(MatrixError) as refused:
        op.args_from_json(json.loads(json.dumps(body)))
    assert (refused.value.status, refused.value.errcode) == (400, "M_BAD_JSON")


def test_a_body_that_is_no_object_is_refused() -> None:
    for body in ([], "send", None, 3):
        with pytest.raises(MatrixError) as refused:
            OPERATIONS["send"].args_from_json(body)
        assert refused.value.errcode == "M_BAD_JSON"
