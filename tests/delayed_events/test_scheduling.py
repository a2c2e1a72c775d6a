"""Delayed events (MSC4140) over plain HTTP: scheduling by query parameter and
by the MSC's own endpoint, sending on time, the actions and their retries,
look-ups, and the advertisement."""

from __future__ import annotations

import time
from urllib.parse import quote

from tests.conftest import RunningServer
from tests.delayed_events.helpers import MSC, V3, new_user, wait_for


async def test_advertised_in_versions_and_capabilities(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    _, versions = await hs.request("GET", "/_matrix/client/versions")
    assert versions["unstable_features"]["org.matrix.msc4140"] is True
    status, caps = await alice.call("GET", f"{V3}/capabilities")
    assert status == 200
    assert caps["capabilities"]["org.matrix.msc4140.delayed_events"] == {
        "max_delay_ms": 24 * 60 * 60 * 1000,
        "max_scheduled": 100,
    }


async def test_delayed_message_arrives_once_after_its_delay(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    before = time.monotonic()
    status, body = await alice.send_later(room, "later", 300)
    assert status == 200, body
    assert set(body) == {"delay_id"}
    # Not in the room yet, but listed as scheduled.
    assert await alice.bodies(room) == []
    listed = await alice.lookup()
    assert [d["delay_id"] for d in listed["delayed_events"]] == [body["delay_id"]]
    entry = listed["delayed_events"][0]
    assert entry["room_id"] == room and entry["type"] == "m.room.message"
    assert entry["delay_ms"] == 300 and entry["delay"] == 300
    assert entry["content"] == {"msgtype": "m.text", "body": "later"}
    assert "state_key" not in entry and "finalised_ts" not in entry

    assert await wait_for(lambda: _has(alice, room, "later"))
    assert time.monotonic() - before >= 0.3
    events = [e for e in await alice.messages(room) if e["type"] == "m.room.message"]
    assert len(events) == 1
    # The sender sees which delayed event it was (MSC4140's unsigned key).
    assert events[0]["unsigned"]["org.matrix.msc4140.delay_id"] == body["delay_id"]
    # Finalised: gone from the scheduled list, and shown as sent.
    after = await alice.lookup()
    assert after["delayed_events"] == [] and after["scheduled"] == []
    [sent] = after["finalised"]
    assert sent["outcome"] == "send" and sent["reason"] == "delay"
    assert sent["event_id"] == events[0]["event_id"]
    status, one = await alice.call("GET", f"{MSC}/delayed_events/{body['delay_id']}")
    assert status == 200 and one["event_id"] == events[0]["event_id"]
    assert one["finalised_ts"] >= one["scheduled_at"] + one["delay_ms"]


async def test_others_do_not_see_the_delay_id(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    _, body = await alice.send_later(room, "hello", 200)
    assert await wait_for(lambda: _has(bob, room, "hello"))
    [event] = [e for e in await bob.messages(room) if e["type"] == "m.room.message"]
    assert "org.matrix.msc4140.delay_id" not in event["unsigned"]
    # Nor can bob look it up or act on it with his token.
    status, err = await bob.call("GET", f"{MSC}/delayed_events/{body['delay_id']}")
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")


async def test_dedicated_endpoint_schedules_message_and_state(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    path = f"{MSC}/rooms/{quote(room)}/delayed_event/m.room.topic/txn1"
    status, body = await alice.call(
        "PUT", path, {"delay_ms": 200, "state_key": "", "content": {"topic": "soon"}}
    )
    assert status == 200, body
    # The same transaction id again: the same delayed event, not a second one.
    status, again = await alice.call(
        "PUT", path, {"delay_ms": 200, "state_key": "", "content": {"topic": "soon"}}
    )
    assert (status, again) == (200, body)
    assert len((await alice.lookup())["delayed_events"]) == 1

    async def topic() -> bool:
        status, content = await alice.state(room, "m.room.topic", "")
        return status == 200 and content.get("topic") == "soon"

    assert await wait_for(topic)


async def test_send_query_param_transaction_id_is_idempotent(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    path = f"{V3}/rooms/{quote(room)}/send/m.room.message/same?org.matrix.msc4140.delay=60000"
    first = await alice.call("PUT", path, {"msgtype": "m.text", "body": "x"})
    second = await alice.call("PUT", path, {"msgtype": "m.text", "body": "x"})
    assert first[0] == 200 and first == second
    assert len((await alice.lookup())["delayed_events"]) == 1


async def test_cancel_restart_send_and_their_retries(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    _, cancelled = await alice.send_later(room, "never", 60_000)
    _, sent = await alice.send_later(room, "now", 60_000)
    _, restarted = await alice.send_later(room, "restarted", 60_000)
    cid, sid, rid = cancelled["delay_id"], sent["delay_id"], restarted["delay_id"]

    assert await alice.act(cid, "cancel") == (200, {})
    assert await alice.act(sid, "send") == (200, {})
    assert await alice.bodies(room) == ["now"]
    scheduled_at = (await alice.call("GET", f"{MSC}/delayed_events/{rid}"))[1]["scheduled_at"]
    assert await alice.act(rid, "restart") == (200, {})
    restarted_at = (await alice.call("GET", f"{MSC}/delayed_events/{rid}"))[1]["scheduled_at"]
    assert restarted_at >= scheduled_at

    # A retry with the outcome that already happened succeeds (the MSC).
    assert await alice.act(cid, "cancel") == (200, {})
    assert await alice.act(sid, "send") == (200, {})
    assert await alice.bodies(room) == ["now"]
    # One that conflicts is "not found", as Synapse answers and Element Call expects.
    for delay_id, action in ((cid, "restart"), (cid, "send"), (sid, "restart"), (sid, "cancel")):
        status, err = await alice.act(delay_id, action)
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND"), (delay_id, action)
    status, err = await alice.act("de_unknown", "cancel")
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await alice.act(rid, "explode")
    assert (status, err["errcode"]) == (404, "M_UNRECOGNIZED")

    listed = await alice.lookup()
    assert [d["delay_id"] for d in listed["delayed_events"]] == [rid]
    outcomes = {f["delayed_event"]["delay_id"]: f["outcome"] for f in listed["finalised"]}
    assert outcomes == {cid: "cancel", sid: "send"}
    assert (await alice.lookup("?status=scheduled"))["finalised"] == []
    only = await alice.lookup(f"?status=finalised&delay_id={cid}")
    assert only["scheduled"] == [] and len(only["finalised"]) == 1
    status, one = await alice.call("GET", f"{MSC}/delayed_events/{cid}")
    assert status == 200 and "event_id" not in one and "finalised_ts" in one
    for query in ("?status=sent", "?from=abc", "?from=-1"):
        status, err = await alice.call("GET", f"{MSC}/delayed_events{query}")
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM"), query
    # Past the end: empty pages, no next_batch.
    assert await alice.lookup("?from=100") == {
        "delayed_events": [],
        "scheduled": [],
        "finalised": [],
    }
    assert await alice.bodies(room) == ["now"]


async def test_action_in_body_and_without_a_token(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room()
    _, first = await alice.send_later(room, "a", 60_000)
    _, second = await alice.send_later(room, "b", 60_000)
    # The earlier MSC form: one path, the action in the body.
    status, body = await alice.call(
        "POST", f"{MSC}/delayed_events/{first['delay_id']}", {"action": "restart"}
    )
    assert (status, body) == (200, {})
    # Another user's token does not reach alice's delayed event...
    status, err = await bob.call(
        "POST", f"{MSC}/delayed_events/{first['delay_id']}", {"action": "cancel"}
    )
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    # ...but with no token at all, the delay id is the credential (as Synapse).
    status, body = await hs.request("POST", f"{MSC}/delayed_events/{first['delay_id']}/cancel")
    assert (status, body) == (200, {})
    status, body = await hs.request(
        "POST", f"{MSC}/delayed_events/{second['delay_id']}", json={"action": "send"}
    )
    assert (status, body) == (200, {})
    assert await alice.bodies(room) == ["b"]
    for bad, code in (({}, "M_MISSING_PARAM"), ({"action": "jump"}, "M_INVALID_PARAM")):
        status, err = await alice.call("POST", f"{MSC}/delayed_events/{first['delay_id']}", bad)
        assert (status, err["errcode"]) == (400, code)
    # Look-ups need a token.
    status, err = await hs.request("GET", f"{MSC}/delayed_events")
    assert (status, err["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_send_action_refused_by_the_room_keeps_it_scheduled(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room()
    # Bob is not in the room: scheduling works, sending is refused then.
    _, body = await bob.send_later(room, "intruder", 60_000)
    status, err = await bob.act(body["delay_id"], "send")
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    assert [d["delay_id"] for d in (await bob.lookup())["delayed_events"]] == [body["delay_id"]]


async def test_refused_on_time_is_finalised_with_its_error(hs: RunningServer) -> None:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room()
    _, body = await bob.send_later(room, "intruder", 200)

    async def failed() -> list:
        return (await bob.lookup("?status=finalised"))["finalised"]

    [entry] = await wait_for(failed)
    assert entry["outcome"] == "cancel" and entry["reason"] == "error"
    assert entry["error"]["errcode"] == "M_FORBIDDEN"
    status, one = await bob.call("GET", f"{MSC}/delayed_events/{body['delay_id']}")
    assert one["error"]["errcode"] == "M_FORBIDDEN" and "event_id" not in one
    assert await alice.bodies(room) == []


async def _has(user, room: str, body: str) -> bool:  # type: ignore[no-untyped-def]
    return body in await user.bodies(room)
