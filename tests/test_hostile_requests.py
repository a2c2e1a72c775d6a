"""Hostile requests against a running server with a real user, room and event.

Each case is a request a fuzzer or an attacker sends: NUL bytes in paths,
query strings and JSON, JSON nested a thousand levels deep, numbers out of
range, lone surrogates, identifiers without a server part and invalid
hostnames in `via`. Each must get the status in the table, a Matrix JSON
error body (or a normal answer, for numbers that are clamped), and must
change nothing a user can see.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import pytest
from yarl import URL

V3 = "/_matrix/client/v3"
MEDIA = "/_matrix/media/v3"
FED = "/_matrix/federation/v1"
ADMIN = "/_synapse/admin"
DEEP_ARRAY = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
HUGE = "100000000000000000000"
MESSAGE = {"msgtype": "m.text", "body": "hello"}


def _token(raw: bytes) -> str:
    """An opaque pagination token as the server makes them: base64 of JSON."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@attrs.frozen
class Case:
    """One hostile request. `path` and `body` are sent exactly as written
    (percent escapes included); `{room}`, `{user}` and `{event}` are filled
    in with the fixture's. `errcode` None means a success is expected."""

    name: str
    method: str
    path: str
    status: int
    errcode: str | None
    body: bytes | None = None
    listener: str = "client"
    as_admin: bool = False


def _raw(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES = [
    # 1. NUL bytes, in paths, query strings and JSON strings and keys.
    Case(
        "pusher app_id with NUL",
        "POST",
        f"{V3}/pushers/set",
        400,
        "M_BAD_JSON",
        _raw(
            {
                "kind": "http",
                "app_id": "app\u0000id",
                "pushkey": "k",
                "app_display_name": "a",
                "device_display_name": "d",
                "lang": "en",
                "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
            }
        ),
    ),
    Case(
        "state key with NUL",
        "PUT",
        f"{V3}/rooms/{{room}}/state/m.room.topic/a%00b",
        400,
        "M_INVALID_PARAM",
        _raw({"topic": "x"}),
    ),
    Case(
        "event type with NUL",
        "PUT",
        f"{V3}/rooms/{{room}}/send/m.room%00message/t1",
        400,
        "M_INVALID_PARAM",
        _raw(MESSAGE),
    ),
    Case(
        "create alias with NUL",
        "PUT",
        f"{V3}/directory/room/%23a%00b:localhost",
        400,
        "M_INVALID_PARAM",
        b'{"room_id": "{room}"}',
    ),
    Case(
        "look up alias with NUL",
        "GET",
        f"{V3}/directory/room/%23a%00b:localhost",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "join alias with NUL",
        "POST",
        f"{V3}/join/%23a%00b:localhost",
        400,
        "M_INVALID_PARAM",
        b"{}",
    ),
    Case(
        "profile of user id with NUL",
        "GET",
        f"{V3}/profile/@a%00b:localhost",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "invite user id with NUL",
        "POST",
        f"{V3}/rooms/{{room}}/invite",
        400,
        "M_BAD_JSON",
        _raw({"user_id": "@a\u0000b:localhost"}),
    ),
    Case("event id with NUL", "GET", f"{V3}/rooms/{{room}}/event/$a%00b", 400, "M_INVALID_PARAM"),
    Case(
        "knock via with NUL",
        "POST",
        f"{V3}/knock/%23r:remote.example?via=a%00b",
        400,
        "M_INVALID_PARAM",
        b"{}",
    ),
    Case(
        "upload filename with NUL",
        "POST",
        f"{MEDIA}/upload?filename=a%00b.txt",
        400,
        "M_INVALID_PARAM",
        b"file body",
    ),
    Case(
        "push rule before with NUL",
        "PUT",
        f"{V3}/pushrules/global/override/hostile?before=a%00b",
        400,
        "M_INVALID_PARAM",
        _raw({"actions": ["notify"], "conditions": []}),
    ),
    Case(
        "access token with NUL",
        "GET",
        f"{V3}/account/whoami?access_token=a%00b",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "message content with NUL (refused, as everywhere)",
        "PUT",
        f"{V3}/rooms/{{room}}/send/m.room.message/t2",
        400,
        "M_BAD_JSON",
        _raw({"msgtype": "m.text", "body": "a\u0000b"}),
    ),
    Case(
        "account data key with NUL",
        "PUT",
        f"{V3}/user/{{user}}/account_data/org.example.hostile",
        400,
        "M_BAD_JSON",
        _raw({"a\u0000": 1}),
    ),
    # 2. JSON nested 1,000 levels deep.
    Case(
        "deep arrays in an event",
        "PUT",
        f"{V3}/rooms/{{room}}/send/m.room.message/t3",
        400,
        "M_NOT_JSON",
        b'{"msgtype": "m.text", "body": "x", "deep": ' + DEEP_ARRAY + b"}",
    ),
    Case(
        "deep objects in account data",
        "PUT",
        f"{V3}/user/{{user}}/account_data/org.example.hostile",
        400,
        "M_NOT_JSON",
        DEEP_OBJECT,
    ),
    Case(
        "200 levels (parsable, still too deep)",
        "PUT",
        f"{V3}/user/{{user}}/account_data/org.example.hostile",
        400,
        "M_NOT_JSON",
        b'{"a":' * 200 + b"1" + b"}" * 200,
    ),
    Case(
        "deep inline sync filter",
        "GET",
        f"{V3}/sync?filter=%7B%22a%22:" + "%5B" * 1000 + "%5D" * 1000 + "%7D",
        400,
        "M_NOT_JSON",
    ),
    Case(
        "deep inline messages filter",
        "GET",
        f"{V3}/rooms/{{room}}/messages?dir=b&filter=" + "%5B" * 1000 + "%5D" * 1000,
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "deep federation transaction",
        "PUT",
        f"{FED}/send/txn1",
        400,
        "M_NOT_JSON",
        b'{"pdus": ' + DEEP_ARRAY + b"}",
        listener="federation",
    ),
    # NUL in a federation transaction is refused event by event, not for the
    # whole transaction: tests/federation/test_receiver.py.
    Case(
        "NUL in a federation path",
        "GET",
        f"{FED}/event/$a%00b",
        400,
        "M_INVALID_PARAM",
        listener="federation",
    ),
    # 3. Numbers out of range.
    Case("sync filter timeline.limit 10^12", "GET", f"{V3}/sync?filter={{big_filter}}", 200, None),
    Case(
        "inline sync filter timeline.limit 10^12",
        "GET",
        f"{V3}/sync?filter="
        + "%7B%22room%22:%7B%22timeline%22:%7B%22limit%22:1000000000000%7D%7D%7D",
        200,
        None,
    ),
    Case(
        "messages limit 10^20",
        "GET",
        f"{V3}/rooms/{{room}}/messages?dir=b&limit=100000000000000000000",
        200,
        None,
    ),
    Case(
        "messages filter limit 10^20",
        "GET",
        f"{V3}/rooms/{{room}}/messages?dir=b&filter=%7B%22limit%22:100000000000000000000%7D",
        200,
        None,
    ),
    Case(
        "public rooms limit 10^20",
        "GET",
        f"{V3}/publicRooms?limit=100000000000000000000",
        200,
        None,
    ),
    Case(
        "public rooms limit -10^20",
        "GET",
        f"{V3}/publicRooms?limit=-100000000000000000000",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "public rooms search limit 10^20",
        "POST",
        f"{V3}/publicRooms",
        200,
        None,
        _raw({"limit": 10**20}),
    ),
    Case(
        "hierarchy limit and depth 10^20",
        "GET",
        "/_matrix/client/v1/rooms/{room}/hierarchy?limit=100000000000000000000&max_depth=100000000000000000000",
        200,
        None,
    ),
    Case(
        "context limit 10^20",
        "GET",
        f"{V3}/rooms/{{room}}/context/{{event}}?limit=100000000000000000000",
        200,
        None,
    ),
    Case(
        "notifications limit 10^20",
        "GET",
        f"{V3}/notifications?limit={HUGE}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "user directory limit 10^20",
        "POST",
        f"{V3}/user_directory/search",
        200,
        None,
        _raw({"search_term": "alice", "limit": 10**20}),
    ),
    Case(
        "search filter limit 10^20",
        "POST",
        f"{V3}/search",
        200,
        None,
        _raw(
            {
                "search_categories": {
                    "room_events": {"search_term": "hello", "filter": {"limit": 10**20}}
                }
            }
        ),
    ),
    Case(
        "relations limit 10^20",
        "GET",
        f"/_matrix/client/v1/rooms/{{room}}/relations/{{event}}?limit={HUGE}",
        200,
        None,
    ),
    Case(
        "threads limit 10^20",
        "GET",
        f"/_matrix/client/v1/rooms/{{room}}/threads?limit={HUGE}",
        200,
        None,
    ),
    # From a token before the world's message, so the answer comes at once
    # (the huge timeout is parsed and capped, not waited for).
    Case("sync timeout 10^20", "GET", f"{V3}/sync?timeout={HUGE}&since={{early}}", 200, None),
    Case(
        "legacy events timeout 10^20",
        "GET",
        f"{V3}/events?timeout={HUGE}&from={{early}}",
        200,
        None,
    ),
    Case(
        "messages from a token of 10^20",
        "GET",
        f"{V3}/rooms/{{room}}/messages?dir=b&from=t{HUGE}-{HUGE}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "sync since a token of 10^20",
        "GET",
        f"{V3}/sync?since=s{HUGE}_{HUGE}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "typing timeout 10^20",
        "PUT",
        f"{V3}/rooms/{{room}}/typing/{{user}}",
        200,
        None,
        _raw({"typing": True, "timeout": 10**20}),
    ),
    Case(
        "report score 10^20",
        "POST",
        f"{V3}/rooms/{{room}}/report/{{event}}",
        400,
        "M_BAD_JSON",
        _raw({"score": 10**20, "reason": "x"}),
    ),
    Case(
        "keys claim timeout 10^20",
        "POST",
        f"{V3}/keys/claim",
        200,
        None,
        _raw({"timeout": 10**20, "one_time_keys": {}}),
    ),
    Case(
        "event content integer 10^20",
        "PUT",
        f"{V3}/rooms/{{room}}/send/m.room.message/t6",
        400,
        "M_BAD_JSON",
        _raw({"msgtype": "m.text", "body": "x", "n": 10**20}),
    ),
    Case(
        "thumbnail of 10^20 pixels",
        "GET",
        f"/_matrix/client/v1/media/thumbnail/localhost/nosuchmedia?width={HUGE}&height={HUGE}",
        404,
        "M_NOT_FOUND",
    ),
    Case(
        "room keys version 10^20",
        "GET",
        f"{V3}/room_keys/keys?version={HUGE}",
        404,
        "M_NOT_FOUND",
    ),
    Case(
        "search next_batch of deep JSON",
        "POST",
        f"{V3}/search?next_batch={_token(DEEP_ARRAY)}",
        400,
        "M_INVALID_PARAM",
        _raw({"search_categories": {"room_events": {"search_term": "hello"}}}),
    ),
    Case(
        "search next_batch of a stream position 10^20",
        "POST",
        f"{V3}/search?next_batch={_token(_raw({'o': 'recent', 'r': 0, 's': 10**20}))}",
        400,
        "M_INVALID_PARAM",
        _raw({"search_categories": {"room_events": {"search_term": "hello"}}}),
    ),
    Case(
        "hierarchy from of deep JSON",
        "GET",
        f"/_matrix/client/v1/rooms/{{room}}/hierarchy?from={_token(DEEP_ARRAY)}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "members at a token of 10^20",
        "GET",
        f"{V3}/rooms/{{room}}/members?at=t{HUGE}-{HUGE}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "legacy events from a token of 10^20",
        "GET",
        f"{V3}/events?from=s{HUGE}&timeout=0",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "key changes from a token of 10^20",
        "GET",
        f"{V3}/keys/changes?from=s{HUGE}&to={{since}}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "notifications from 10^20", "GET", f"{V3}/notifications?from={HUGE}", 400, "M_INVALID_PARAM"
    ),
    Case(
        "relations from 10^20",
        "GET",
        f"/_matrix/client/v1/rooms/{{room}}/relations/{{event}}?from={HUGE}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "threads from 10^20",
        "GET",
        f"/_matrix/client/v1/rooms/{{room}}/threads?from={HUGE}",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "public rooms since 10^20", "GET", f"{V3}/publicRooms?since={HUGE}", 400, "M_INVALID_PARAM"
    ),
    Case(
        "room keys version path 10^20", "GET", f"{V3}/room_keys/version/{HUGE}", 404, "M_NOT_FOUND"
    ),
    Case("filter id 10^20", "GET", f"{V3}/user/{{user}}/filter/{HUGE}", 404, "M_NOT_FOUND"),
    Case(
        "initialSync limit 10^20",
        "GET",
        f"{V3}/rooms/{{room}}/initialSync?limit={HUGE}",
        200,
        None,
    ),
    Case(
        "admin users from 10^20",
        "GET",
        f"{ADMIN}/v2/users?from={HUGE}",
        400,
        "M_INVALID_PARAM",
        as_admin=True,
    ),
    Case(
        "admin rooms from and limit 10^20",
        "GET",
        f"{ADMIN}/v1/rooms?from={HUGE}&limit={HUGE}",
        400,
        "M_INVALID_PARAM",
        as_admin=True,
    ),
    Case(
        "admin reports from 10^20",
        "GET",
        f"{ADMIN}/v1/event_reports?from={HUGE}",
        400,
        "M_INVALID_PARAM",
        as_admin=True,
    ),
    Case(
        "admin audit log from_ts 10^20",
        "GET",
        f"{ADMIN}/v1/audit_log?from_ts={HUGE}",
        400,
        "M_INVALID_PARAM",
        as_admin=True,
    ),
    Case(
        "admin rate limit override 10^12",
        "POST",
        f"{ADMIN}/v1/users/{{user}}/override_ratelimit",
        400,
        "M_INVALID_PARAM",
        _raw({"messages_per_second": 10**12}),
        as_admin=True,
    ),
    Case(
        "admin user not-a-user",
        "GET",
        f"{ADMIN}/v2/users/not-a-user",
        400,
        "M_INVALID_PARAM",
        as_admin=True,
    ),
    Case(
        "1e400 in event content",
        "PUT",
        f"{V3}/rooms/{{room}}/send/m.room.message/t4",
        400,
        "M_BAD_JSON",
        b'{"msgtype": "m.text", "body": "x", "n": 1e400}',
    ),
    Case(
        "lone surrogate in event content",
        "PUT",
        f"{V3}/rooms/{{room}}/send/m.room.message/t5",
        400,
        "M_BAD_JSON",
        b'{"msgtype": "m.text", "body": "\\ud800"}',
    ),
    Case(
        "invalid UTF-8 (an encoded surrogate) in a path",
        "GET",
        f"{V3}/rooms/{{room}}/event/$%ED%A0%80",
        404,
        "M_NOT_FOUND",
    ),
    # 4. Identifiers without a server part, invalid hostnames in `via`.
    Case("profile of not-a-user", "GET", f"{V3}/profile/not-a-user", 400, "M_INVALID_PARAM"),
    Case("profile of %ZZ", "GET", f"{V3}/profile/%ZZ", 400, "M_INVALID_PARAM"),
    Case("profile of @user:", "GET", f"{V3}/profile/@user:", 400, "M_INVALID_PARAM"),
    Case(
        "display name of not-a-user",
        "GET",
        f"{V3}/profile/nobody/displayname",
        400,
        "M_INVALID_PARAM",
    ),
    Case("join #abc", "POST", f"{V3}/join/%23abc", 400, "M_INVALID_PARAM", b"{}"),
    Case("join abc (no sigil)", "POST", f"{V3}/join/abc", 400, "M_INVALID_PARAM", b"{}"),
    Case("alias #abc", "GET", f"{V3}/directory/room/%23abc", 400, "M_INVALID_PARAM"),
    Case(
        "join via an invalid hostname",
        "POST",
        f"{V3}/join/!nowhere:remote.example?via=bad..host",
        400,
        "M_INVALID_PARAM",
        b"{}",
    ),
    Case(
        "knock via a hostname with a space",
        "POST",
        f"{V3}/knock/!nowhere:remote.example?via=bad%20host",
        400,
        "M_INVALID_PARAM",
        b"{}",
    ),
    Case(
        "join via an empty server name",
        "POST",
        f"{V3}/join/!nowhere:remote.example?server_name=",
        400,
        "M_INVALID_PARAM",
        b"{}",
    ),
    Case(
        "join a room id whose server is no hostname",
        "POST",
        f"{V3}/join/!nowhere:bad..host",
        400,
        "M_INVALID_PARAM",
        b"{}",
    ),
    Case(
        "invite a user whose server is no hostname",
        "POST",
        f"{V3}/rooms/{{room}}/invite",
        400,
        "M_INVALID_PARAM",
        _raw({"user_id": "@user:bad..host"}),
    ),
    Case(
        "profile of a user whose server is no hostname",
        "GET",
        f"{V3}/profile/@u:bad..host",
        400,
        "M_INVALID_PARAM",
    ),
    Case(
        "invite not-a-user",
        "POST",
        f"{V3}/rooms/{{room}}/invite",
        400,
        "M_INVALID_PARAM",
        _raw({"user_id": "not-a-user"}),
    ),
    Case(
        "invite a user on server ''",
        "POST",
        f"{V3}/rooms/{{room}}/invite",
        400,
        "M_INVALID_PARAM",
        _raw({"user_id": "@user:"}),
    ),
]


@attrs.frozen
class World:
    """The user, room and event every case runs against."""

    token: str
    user_id: str
    room_id: str
    event_id: str
    big_filter: str
    since: str
    admin_token: str
    # A sync token from before the message.
    early: str


@pytest.fixture
async def world(hs) -> World:
    reg = await hs.register("alice")
    token = reg["access_token"]
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"room_alias_name": "hostile"}
    )
    assert status == 200, body
    room_id = body["room_id"]
    status, body = await hs.request("GET", f"{V3}/sync", token=token)
    assert status == 200, body
    early = body["next_batch"]
    status, body = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t0", token=token, json=MESSAGE
    )
    assert status == 200, body
    event_id = body["event_id"]
    status, body = await hs.request(
        "POST",
        f"{V3}/user/{reg['user_id']}/filter",
        token=token,
        json={"room": {"timeline": {"limit": 10**12}}},
    )
    assert status == 200, body
    big_filter = body["filter_id"]
    status, body = await hs.request("GET", f"{V3}/sync", token=token)
    assert status == 200, body
    since = body["next_batch"]
    # Server administrators are made in the database, as `make-admin` does.
    root = await hs.register("root")
    await hs.pool.execute("UPDATE users SET admin = TRUE WHERE user_id = $1", root["user_id"])
    return World(
        token, reg["user_id"], room_id, event_id, big_filter, since, root["access_token"], early
    )


async def _send(hs, world: World, case: Case) -> tuple[int, Any]:
    def fill(text: str) -> str:
        return (
            text.replace("{room}", world.room_id)
            .replace("{user}", world.user_id)
            .replace("{event}", world.event_id)
            .replace("{big_filter}", world.big_filter)
            .replace("{since}", world.since)
            .replace("{early}", world.early)
        )

    if case.listener == "client":
        base = f"http://127.0.0.1:{hs.server.client_port}"
    else:
        base = f"https://127.0.0.1:{hs.server.federation_port}"
    url = URL(base + fill(case.path), encoded=True)
    body = fill(case.body.decode("utf-8")).encode() if case.body is not None else None
    token = world.admin_token if case.as_admin else world.token
    headers = {"Authorization": f"Bearer {token}"} if case.listener == "client" else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    async with hs.http.request(case.method, url, data=body, headers=headers, ssl=False) as resp:
        return resp.status, await resp.json(content_type=None)


async def _snapshot(hs, world: World) -> dict[str, Any]:
    """What the user can see of their account and room."""
    reads = {
        "state": f"{V3}/rooms/{world.room_id}/state",
        "messages": f"{V3}/rooms/{world.room_id}/messages?dir=b&limit=100",
        "pushers": f"{V3}/pushers",
        "pushrules": f"{V3}/pushrules/",
        "profile": f"{V3}/profile/{world.user_id}",
        "joined": f"{V3}/joined_rooms",
        "aliases": f"{V3}/rooms/{world.room_id}/aliases",
        "account_data": f"{V3}/user/{world.user_id}/account_data/org.example.hostile",
    }
    seen = {}
    for name, path in reads.items():
        status, body = await hs.request("GET", path, token=world.token)
        # Events are compared by id: their `unsigned.age` grows by itself.
        if name == "messages":
            body = [e["event_id"] for e in body["chunk"]]
        elif name == "state":
            body = sorted((e["type"], e["state_key"], e["event_id"]) for e in body)
        seen[name] = (status, body)
    return seen


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_request(hs, world, case):
    before = await _snapshot(hs, world)
    status, body = await _send(hs, world, case)
    assert status == case.status, body
    if case.errcode is not None:
        assert isinstance(body, dict) and body["errcode"] == case.errcode, body
        assert isinstance(body.get("error"), str), body
    assert await _snapshot(hs, world) == before
