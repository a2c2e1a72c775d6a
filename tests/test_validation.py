"""Bad input across the client API gets the Matrix error Synapse gives (and
SyTest checks), and changes nothing; the good input next to it still works."""

from __future__ import annotations

import json
from typing import Any

import pytest

from homeserver.errors import MatrixError
from homeserver.rooms.canonical_alias import check_canonical_alias

V3 = "/_matrix/client/v3"
UNSTABLE = "/_matrix/client/unstable"
REFUSED_TYPE = "org.example.refused"
TOO_BIG = "A" * 70_000


async def make_room(hs: Any, token: str, **body: Any) -> str:
    status, got = await hs.request("POST", f"{V3}/createRoom", token=token, json=body)
    assert status == 200, got
    return got["room_id"]


async def send(hs: Any, token: str, room_id: str, content: Any, event_type: str = "m.test") -> str:
    status, got = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/send/{event_type}", token=token, json=content
    )
    assert status == 200, got
    return got["event_id"]


async def timeline_types(hs: Any, token: str, room_id: str) -> list[str]:
    status, got = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/messages?dir=b&limit=100", token=token
    )
    assert status == 200, got
    return [e["type"] for e in got["chunk"]]


async def test_refused_requests_get_the_right_error_and_change_nothing(hs):
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice)
    old_room = await make_room(hs, alice, room_version="1")
    other_room = await make_room(hs, alice)
    elsewhere = await send(hs, alice, other_room, {"body": "in another room"})
    send_refused = f"/rooms/{room}/send/{REFUSED_TYPE}"
    raw_json = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, str, Any, int, str]] = [
        # (what, method, path under /v3, JSON body or raw bytes, status, errcode)
        ("username with a newline", "POST", "/register",
         {"username": "bob\n", "password": "x", "auth": {"type": "m.login.dummy"}},
         400, "M_INVALID_USERNAME"),
        ("numeric room version", "POST", "/createRoom", {"room_version": 1}, 400, "M_BAD_JSON"),
        ("float in content", "POST", send_refused, {"body": 1.1}, 400, "M_BAD_JSON"),
        ("2**53 in content", "POST", send_refused, {"body": 2**53}, 400, "M_BAD_JSON"),
        ("-(2**53) in content", "POST", send_refused, {"body": -(2**53)}, 400, "M_BAD_JSON"),
        ("float in a room 1 event", "POST", f"/rooms/{old_room}/send/{REFUSED_TYPE}",
         {"body": 0.5}, 400, "M_BAD_JSON"),
        ("NaN", "POST", send_refused, b'{"body": NaN}', 400, "M_NOT_JSON"),
        ("Infinity", "POST", send_refused, b'{"body": -Infinity}', 400, "M_NOT_JSON"),
        ("event over 64 KiB", "POST", send_refused, {"body": TOO_BIG}, 413, "M_TOO_LARGE"),
        ("state event over 64 KiB", "PUT", f"/rooms/{room}/state/{REFUSED_TYPE}",
         {"key": TOO_BIG}, 413, "M_TOO_LARGE"),
        ("type over 255 bytes", "POST", f"/rooms/{room}/send/{'t' * 256}", {}, 413, "M_TOO_LARGE"),
        ("state key over 255 bytes", "PUT", f"/rooms/{room}/state/{REFUSED_TYPE}/{'k' * 256}",
         {}, 413, "M_TOO_LARGE"),
        ("redaction of another room's event", "PUT",
         f"/rooms/{room}/redact/{elsewhere}/txn1", {}, 400, "M_INVALID_PARAM"),
        ("filter with a bad room id", "POST", "/user/@alice:localhost/filter",
         {"room": {"timeline": {"rooms": ["not_a_room_id"]}}}, 400, "M_BAD_JSON"),
        ("filter with a bad sender", "POST", "/user/@alice:localhost/filter",
         {"room": {"timeline": {"senders": ["not_a_user_id"]}}}, 400, "M_BAD_JSON"),
        ("filter with a bad room id at the top", "POST", "/user/@alice:localhost/filter",
         {"room": {"not_rooms": ["#alias:localhost"]}}, 400, "M_BAD_JSON"),
        ("filter with a negative limit", "POST", "/user/@alice:localhost/filter",
         {"room": {"timeline": {"limit": -1}}}, 400, "M_BAD_JSON"),
    ]  # fmt: skip
    for what, method, path, body, status, errcode in cases:
        if isinstance(body, bytes):
            got_status, got = await hs.request(
                method, V3 + path, token=alice, data=body, headers=raw_json
            )
        else:
            got_status, got = await hs.request(method, V3 + path, token=alice, json=body)
        assert (got_status, got and got.get("errcode")) == (status, errcode), (what, got)
    for room_id in (room, old_room):
        assert REFUSED_TYPE not in await timeline_types(hs, alice, room_id)
    assert "m.room.redaction" not in await timeline_types(hs, alice, room)
    status, _ = await hs.request("GET", f"{V3}/profile/@bob:localhost")
    assert status == 404


async def test_json_numbers_at_the_limits_are_accepted(hs):
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice)
    event_id = await send(hs, alice, room, {"max": 2**53 - 1, "min": -(2**53) + 1})
    status, event = await hs.request("GET", f"{V3}/rooms/{room}/event/{event_id}", token=alice)
    assert (status, event["content"]) == (200, {"max": 2**53 - 1, "min": -(2**53) + 1})


async def test_post_send_without_transaction_id(hs):
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice)
    content = {"msgtype": "m.text", "body": "posted"}
    first = await send(hs, alice, room, content, "m.room.message")
    second = await send(hs, alice, room, content, "m.room.message")
    # Nothing to deduplicate on: two POSTs are two messages.
    assert first != second
    status, event = await hs.request("GET", f"{V3}/rooms/{room}/event/{first}", token=alice)
    assert status == 200
    assert event["content"] == content
    assert "transaction_id" not in event.get("unsigned", {})


async def test_filter_with_timeline_limit_zero(hs):
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice)
    await send(hs, alice, room, {"body": "hidden by the limit"})
    definition = {"room": {"timeline": {"limit": 0}, "state": {"types": ["m.room.member"]}}}
    status, got = await hs.request(
        "POST", f"{V3}/user/@alice:localhost/filter", token=alice, json=definition
    )
    assert status == 200, got
    status, got = await hs.request("GET", f"{V3}/sync?filter={json.dumps(definition)}", token=alice)
    assert status == 200, got
    joined = got["rooms"]["join"][room]
    assert joined["timeline"]["events"] == []
    assert [e["type"] for e in joined["state"]["events"]] == ["m.room.member"]


async def test_canonical_alias_must_point_to_the_room(hs):
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice, room_alias_name="home")
    await make_room(hs, alice, room_alias_name="away")
    path = f"{V3}/rooms/{room}/state/m.room.canonical_alias"
    refused = [
        ({"alias": "#nowhere:localhost"}, "M_BAD_ALIAS"),
        ({"alias": "#home:localhost", "alt_aliases": ["#away:localhost"]}, "M_BAD_ALIAS"),
        ({"alias": "%home:localhost"}, "M_INVALID_PARAM"),
        ({"alias": "#home:localhost", "alt_aliases": ["%home:localhost"]}, "M_INVALID_PARAM"),
        ({"alias": "#home:localhost", "alt_aliases": "#home:localhost"}, "M_INVALID_PARAM"),
        ({"alias": 5}, "M_INVALID_PARAM"),
    ]
    for content, errcode in refused:
        status, got = await hs.request("PUT", path, token=alice, json=content)
        assert (status, got["errcode"]) == (400, errcode), content
    # createRoom set the alias; the refused events left it alone.
    status, got = await hs.request("GET", path, token=alice)
    assert (status, got) == (200, {"alias": "#home:localhost"})

    content = {"alias": "#home:localhost", "alt_aliases": ["#home:localhost"]}
    status, got = await hs.request("PUT", path, token=alice, json=content)
    assert status == 200, got
    status, got = await hs.request("PUT", path, token=alice, json={})
    assert status == 200, got


async def test_malformed_push_rule_paths_are_400(hs):
    alice = (await hs.register("alice"))["access_token"]
    rule = {"actions": ["notify"]}
    for method, path in [
        ("PUT", "/"),
        ("PUT", "/not_a_scope/room/%23spam:example.com"),
        ("PUT", "/global"),
        ("PUT", "/global/room"),
        ("PUT", "/global/room/"),
        ("PUT", "/global/override/.m.rule.master/not_an_attr"),
        ("DELETE", "/global/room/"),
        ("GET", "/global"),
        ("GET", "/global/room"),
        ("GET", "/not_a_scope/"),
        ("GET", "/global/override/.m.rule.master/not_an_attr"),
    ]:
        status, got = await hs.request(method, f"{V3}/pushrules{path}", token=alice, json=rule)
        assert (status, got["errcode"]) == (400, "M_UNRECOGNIZED"), (method, path)
    # The well-formed paths still answer as before.
    status, _ = await hs.request("GET", f"{V3}/pushrules", token=alice)
    assert status == 404
    status, got = await hs.request("GET", f"{V3}/pushrules/global/override/nope", token=alice)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    status, got = await hs.request("GET", f"{V3}/pushrules/global/nope/", token=alice)
    assert (status, got["errcode"]) == (400, "M_INVALID_PARAM")
    status, got = await hs.request("GET", f"{V3}/pushrules/global/room/", token=alice)
    assert (status, got) == (200, [])


async def test_cross_signing_upload_under_the_unstable_prefix(hs):
    reg = await hs.register("alice")
    token, user_id = reg["access_token"], reg["user_id"]
    public = "nqOvzeuGWT/sRx3h7+MHoInYj3Uk2LD/unI9kDYcHwk"
    master = {"user_id": user_id, "usage": ["master"], "keys": {f"ed25519:{public}": public}}
    status, got = await hs.request(
        "POST", f"{UNSTABLE}/keys/device_signing/upload", token=token, json={"master_key": master}
    )
    assert status == 200, got
    status, got = await hs.request(
        "POST", f"{V3}/keys/query", token=token, json={"device_keys": {user_id: []}}
    )
    assert got["master_keys"][user_id] == master
    status, got = await hs.request(
        "POST", f"{UNSTABLE}/keys/signatures/upload", token=token, json={}
    )
    assert (status, got) == (200, {"failures": {}})


async def test_only_the_aliases_an_event_adds_are_looked_up():
    pointing = {"#here:hs": "!room"}
    looked_up: list[str] = []

    async def lookup(alias: str) -> str | None:
        looked_up.append(alias)
        return pointing.get(alias)

    # "#gone:hs" no longer points anywhere, but the current event has it.
    previous = {"alias": "#gone:hs", "alt_aliases": ["#gone:hs"]}
    await check_canonical_alias("!room", {**previous, "x": 1}, previous, lookup)
    await check_canonical_alias(
        "!room", {"alias": "#gone:hs", "alt_aliases": ["#gone:hs", "#here:hs"]}, previous, lookup
    )
    assert looked_up == ["#here:hs"]
    with pytest.raises(MatrixError) as refused:
        await check_canonical_alias("!room", {"alias": "#new:hs"}, previous, lookup)
    assert (refused.value.status, refused.value.errcode) == (400, "M_BAD_ALIAS")
