"""Older history of a room joined through another server: /messages pages
back past our join, and the events before it come from the resident server's
/backfill, checked like any received event and ordered by depth."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from signedjson.key import generate_signing_key

from homeserver.events.builder import build_event
from homeserver.events.event import Event
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.hosted_room import V1, HostedRoom, now_ms

CLIENT = "/_matrix/client/v3"
MESSAGES = 30


def serve_backfill(
    room: HostedRoom, extra: Callable[[], list[dict[str, Any]]] = list, delay_s: float = 0.0
) -> list[tuple[list[str], int]]:
    """GET /backfill (and /send) on the remote, walking the room's DAG back from `v`
    (newest first, at most `limit`), plus `extra()` PDUs; returns the list of
    (v, limit) it was asked for."""
    asked: list[tuple[list[str], int]] = []

    async def backfill(request: web.Request, _origin: str, _body: Any) -> Any:
        assert request.match_info["roomId"] == room.room_id
        v, limit = request.query.getall("v"), int(request.query["limit"])
        asked.append((v, limit))
        await asyncio.sleep(delay_s)
        by_id = {e.event_id: e for e in room.events}
        found: dict[str, Event] = {}
        todo = list(v)
        while todo and len(found) < limit:
            event = by_id[todo.pop(0)]
            if event.event_id not in found:
                found[event.event_id] = event
                todo.extend(event.prev_event_ids)
        pdus = [dict(e.pdu) for e in sorted(found.values(), key=lambda e: -e.depth)]
        return {
            "origin": room.remote.server_name,
            "origin_server_ts": now_ms(),
            "pdus": pdus + extra(),
        }

    async def send(_request: web.Request, _origin: str, _body: Any) -> Any:
        return {"pdus": {}}

    router = room.remote.app.router
    router.add_get(V1 + "/backfill/{roomId}", room.remote.handler(backfill))
    serve_reads(room)
    # Our join reaches the resident server by /send; an error would back us off.
    router.add_put(V1 + "/send/{txnId}", room.remote.handler(send))
    return asked


def serve_reads(room: HostedRoom) -> None:
    """/event, /event_auth and /state_ids of the remote's linear room: what
    our server asks for at the edge of a backfill answer; /get_missing_events
    finds nothing."""

    def by_id() -> dict[str, Event]:
        return {e.event_id: e for e in room.events}

    def transaction(events: list[Event]) -> dict[str, Any]:
        pdus = [dict(e.pdu) for e in events]
        return {"origin": room.remote.server_name, "origin_server_ts": now_ms(), "pdus": pdus}

    async def event(request: web.Request, _origin: str, _body: Any) -> Any:
        return transaction([by_id()[request.match_info["eventId"]]])

    async def event_auth(request: web.Request, _origin: str, _body: Any) -> Any:
        chain = room.auth_chain([by_id()[request.match_info["eventId"]]])
        return {"auth_chain": [dict(e.pdu) for e in chain]}

    async def state_ids(request: web.Request, _origin: str, _body: Any) -> Any:
        state: dict[Any, Event] = {}
        for e in room.events:
            if e.event_id == request.query["event_id"]:
                break
            if e.state_key is not None:
                state[e.state_tuple] = e
        chain = room.auth_chain(list(state.values()))
        return {
            "pdu_ids": [e.event_id for e in state.values()],
            "auth_chain_ids": [e.event_id for e in chain],
        }

    async def no_missing_events(_request: web.Request, _origin: str, _body: Any) -> Any:
        return {"events": []}

    router = room.remote.app.router
    # Across a gap the receiver then learns the state from /state_ids.
    router.add_post(V1 + "/get_missing_events/{roomId}", room.remote.handler(no_missing_events))
    router.add_get(V1 + "/event/{eventId}", room.remote.handler(event))
    router.add_get(V1 + "/event_auth/{roomId}/{eventId}", room.remote.handler(event_auth))
    router.add_get(V1 + "/state_ids/{roomId}", room.remote.handler(state_ids))


async def joined(
    fed_hs: RunningServer, remote: ScriptedRemote, room: HostedRoom
) -> tuple[str, str]:
    """Start the remote, join @bob to its room; (bob's token, /sync next_batch)."""
    await remote.start()
    await remote.expect_keys_of(fed_hs)
    token = (await fed_hs.register("bob"))["access_token"]
    status, body = await fed_hs.request(
        "POST",
        f"{CLIENT}/join/{quote(room.room_id)}?via={remote.server_name}",
        token=token,
        json={},
    )
    assert status == 200, body
    status, body = await fed_hs.request("GET", f"{CLIENT}/sync", token=token)
    assert status == 200, body
    return token, body["next_batch"]


async def paginate(
    fed_hs: RunningServer, token: str, room_id: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Every event of /messages backwards from the end, newest first; and
    how many pages it took."""
    events: list[dict[str, Any]] = []
    since = ""
    for pages in range(1, 50):
        status, body = await fed_hs.request(
            "GET",
            f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit={limit}{since}",
            token=token,
        )
        assert status == 200, body
        events.extend(body["chunk"])
        if "end" not in body:
            return events, pages
        since = f"&from={quote(body['end'])}"
    raise AssertionError("pagination never ended")


def room_with_history(remote: ScriptedRemote, version: str, messages: int = MESSAGES) -> HostedRoom:
    room = HostedRoom(remote, version)
    for n in range(messages):
        room.send("m.room.message", {"msgtype": "m.text", "body": f"message {n}"})
    room.serve()
    return room


@pytest.mark.parametrize("version", ["1", "10", "12"])
async def test_messages_pages_back_into_history_from_before_our_join(
    fed_hs: RunningServer, remote_factory: Any, version: str
) -> None:
    remote = await remote_factory(start=False)
    room = room_with_history(remote, version)
    asked = serve_backfill(room)
    token, next_batch = await joined(fed_hs, remote, room)
    assert asked == []

    events, pages = await paginate(fed_hs, token, room.room_id, limit=10)
    # The whole room, newest first, exactly as the resident server's DAG has it.
    assert [e["event_id"] for e in events] == [e.event_id for e in reversed(room.events)]
    assert pages >= 4
    messages = [e for e in reversed(events) if e["type"] == "m.room.message"]
    assert [m["content"]["body"] for m in messages] == ["hello"] + [
        f"message {n}" for n in range(MESSAGES)
    ]
    assert {m["sender"] for m in messages} == {room.alice}
    assert events[0]["sender"] == "@bob:localhost" and events[-1]["type"] == "m.room.create"
    # One round, from the join's prev event.
    assert len(asked) == 1
    assert asked[0][0] == list(room.events[-1].prev_event_ids)

    # /context around a backfilled message finds its neighbours by depth.
    middle = room.events[20]
    status, context = await fed_hs.request(
        "GET",
        f"{CLIENT}/rooms/{quote(room.room_id)}/context/{quote(middle.event_id)}?limit=4",
        token=token,
    )
    assert status == 200, context
    assert context["event"]["content"] == dict(middle.content)
    assert [e["event_id"] for e in context["events_before"]] == [
        room.events[19].event_id,
        room.events[18].event_id,
    ]
    assert [e["event_id"] for e in context["events_after"]] == [
        room.events[21].event_id,
        room.events[22].event_id,
    ]

    # History already here: paging again asks nobody.
    again, _ = await paginate(fed_hs, token, room.room_id, limit=7)
    assert [e["event_id"] for e in again] == [e["event_id"] for e in events]
    assert len(asked) == 1

    # Backfilled history is not news: /sync since the join shows nothing new.
    status, body = await fed_hs.request(
        "GET", f"{CLIENT}/sync?since={next_batch}&timeout=0", token=token
    )
    assert status == 200, body
    timeline = body.get("rooms", {}).get("join", {}).get(room.room_id, {}).get("timeline", {})
    assert timeline.get("events", []) == []


async def test_a_forged_event_in_a_backfill_answer_is_refused_and_the_rest_shown(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = room_with_history(remote, "10")
    anchor = room.events[10]
    # Built on a real event, signed with a key the remote never published.
    forged = build_event(
        room.version,
        room_id=room.room_id,
        type="m.room.message",
        sender=room.alice,
        content={"msgtype": "m.text", "body": "forged"},
        prev_events=[anchor],
        state=lambda t, k: room.state.get((t, k)),
        origin_server_ts=now_ms(),
        server_name=remote.server_name,
        signing_key=generate_signing_key("forger"),
    )
    asked = serve_backfill(room, lambda: [dict(forged.pdu)])
    token, _ = await joined(fed_hs, remote, room)

    events, _ = await paginate(fed_hs, token, room.room_id, limit=20)
    assert [e["event_id"] for e in events] == [e.event_id for e in reversed(room.events)]
    assert "forged" not in [e["content"].get("body") for e in events]
    assert forged.event_id not in await fed_hs.server.event_store.get_events([forged.event_id])
    status, body = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/event/{quote(forged.event_id)}", token=token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert len(asked) == 1


async def test_with_the_remote_down_messages_answers_with_what_we_have(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = room_with_history(remote, "10")
    asked = serve_backfill(room)
    token, _ = await joined(fed_hs, remote, room)
    await remote.stop()

    events, pages = await paginate(fed_hs, token, room.room_id, limit=10)
    assert [e["event_id"] for e in events] == [room.events[-1].event_id]
    # The page of what we have (with `end`, as it has events, as in Synapse),
    # then an empty page without `end`.
    assert pages == 2
    assert asked == []


async def test_history_visibility_applies_to_backfilled_events(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = HostedRoom(remote, "10")
    room.send("m.room.history_visibility", {"history_visibility": "joined"}, state_key="")
    for n in range(5):
        room.send("m.room.message", {"msgtype": "m.text", "body": f"secret {n}"})
    room.serve()
    asked = serve_backfill(room)
    token, _ = await joined(fed_hs, remote, room)

    events, _ = await paginate(fed_hs, token, room.room_id, limit=10)
    assert len(asked) == 1
    # Stored, with their state, yet none is visible to a user who was not joined.
    stored = await fed_hs.server.event_store.get_events(e.event_id for e in room.events)
    assert all(stored[e.event_id].state_group is not None for e in room.events)
    # Before the change the room was `shared` (the default), so what came
    # before it, and the change itself, is visible to a user who joined
    # later; the messages under `joined` are not.
    change = next(i for i, e in enumerate(room.events) if e.type == "m.room.history_visibility")
    visible = [*room.events[: change + 1], room.events[-1]]
    assert [e["event_id"] for e in events] == [e.event_id for e in reversed(visible)]
    assert not [e for e in events if e["content"].get("body", "").startswith("secret")]


async def test_pages_asked_for_at_once_share_one_backfill_round(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = room_with_history(remote, "10")
    asked = serve_backfill(room, delay_s=0.5)
    token, _ = await joined(fed_hs, remote, room)

    async def first_page() -> list[str]:
        status, body = await fed_hs.request(
            "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b&limit=5", token=token
        )
        assert status == 200, body
        return [e["event_id"] for e in body["chunk"]]

    pages = await asyncio.gather(*(first_page() for _ in range(3)))
    newest = [e.event_id for e in reversed(room.events)][:5]
    assert pages == [newest] * 3
    assert len(asked) == 1


async def test_history_longer_than_one_round_comes_in_several(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = room_with_history(remote, "10", messages=150)
    asked = serve_backfill(room)
    token, _ = await joined(fed_hs, remote, room)

    events, _ = await paginate(fed_hs, token, room.room_id, limit=30)
    assert [e["event_id"] for e in events] == [e.event_id for e in reversed(room.events)]
    # The first round ends inside the messages; the second goes on from
    # there, its edge's state learnt from /state_ids.
    assert len(asked) == 2
    by_id = {e.event_id: e for e in room.events}
    assert by_id[asked[1][0][0]].depth < by_id[asked[0][0][0]].depth - 90
    assert any(path.startswith(V1 + "/state_ids/") for _, path, _, _ in remote.received)


async def test_a_gap_a_transaction_left_in_the_middle_is_filled_when_paged_across(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    remote = await remote_factory(start=False)
    room = room_with_history(remote, "10")
    asked = serve_backfill(room)
    token, _ = await joined(fed_hs, remote, room)
    before, _ = await paginate(fed_hs, token, room.room_id, limit=50)
    assert len(asked) == 1 and len(before) == len(room.events)
    # 20 messages we never hear of, then one sent to us: stored on top of
    # the state at its prev event, which leaves a hole behind it.
    for n in range(20):
        room.send("m.room.message", {"msgtype": "m.text", "body": f"unheard {n}"})
    latest = room.send("m.room.message", {"msgtype": "m.text", "body": "latest"})
    body = {"origin": remote.server_name, "origin_server_ts": now_ms(), "pdus": [dict(latest.pdu)]}
    status, answer = await remote.request(fed_hs, "PUT", f"{V1}/send/gap1", json_body=body)
    assert (status, answer) == (200, {"pdus": {latest.event_id: {}}}), answer

    # A full page of what we have runs across the hole: filled, then served.
    status, page = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{quote(room.room_id)}/messages?dir=b&limit=5", token=token
    )
    assert status == 200, page
    assert [e["content"].get("body") for e in page["chunk"]] == [
        "latest",
        "unheard 19",
        "unheard 18",
        "unheard 17",
        "unheard 16",
    ]
    assert len(asked) == 2 and asked[1][0] == list(latest.prev_event_ids)
    events, _ = await paginate(fed_hs, token, room.room_id, limit=50)
    assert [e["event_id"] for e in events] == [e.event_id for e in reversed(room.events)]
    assert len(asked) == 2
