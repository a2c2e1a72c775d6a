"""Sending events (transaction ids), room state reads and writes, and redaction."""

from __future__ import annotations

import json
from typing import Any

import nio

V3 = "/_matrix/client/v3"
TEXT = {"msgtype": "m.text", "body": "hello"}


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def second_device(hs: Any, user: str) -> str:
    """An access token for another device of `user` (password "secret")."""
    status, body = await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": "secret",
        },
    )
    assert status == 200, body
    return body["access_token"]


async def get_event(hs: Any, token: str, room_id: str, event_id: str) -> dict[str, Any]:
    status, body = await hs.request("GET", f"{V3}/rooms/{room_id}/event/{event_id}", token=token)
    assert status == 200, body
    return body


async def event_count(hs: Any, room_id: str) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM events WHERE room_id = $1", room_id)


async def test_send_is_idempotent_per_device(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    await bob.join(room_id)
    path = f"{V3}/rooms/{room_id}/send/m.room.message/txn1"

    first = await alice.room_send(room_id, "m.room.message", TEXT, tx_id="txn1")
    assert isinstance(first, nio.RoomSendResponse), first
    status, again = await hs.request("PUT", path, token=alice.access_token, json=TEXT)
    assert (status, again) == (200, {"event_id": first.event_id})
    # A retry is answered from the first send, even with another body.
    status, again = await hs.request(
        "PUT", path, token=alice.access_token, json={"msgtype": "m.text", "body": "other"}
    )
    assert (status, again) == (200, {"event_id": first.event_id})
    rows = await hs.pool.fetch(
        "SELECT event_id FROM events WHERE room_id = $1 AND type = 'm.room.message'", room_id
    )
    assert [r["event_id"] for r in rows] == [first.event_id]

    # The same transaction id from another device of the same user is a new event.
    laptop = await second_device(hs, "alice")
    status, other = await hs.request("PUT", path, token=laptop, json=TEXT)
    assert status == 200 and other["event_id"] != first.event_id
    # And from another user too.
    status, bobs = await hs.request("PUT", path, token=bob.access_token, json=TEXT)
    assert status == 200 and bobs["event_id"] not in (first.event_id, other["event_id"])

    # Only the sending device sees its transaction id.
    seen = await get_event(hs, alice.access_token, room_id, first.event_id)
    assert seen["unsigned"]["transaction_id"] == "txn1"
    assert seen["content"] == TEXT and seen["sender"] == "@alice:localhost"
    assert (
        "transaction_id" not in (await get_event(hs, laptop, room_id, first.event_id))["unsigned"]
    )
    assert (
        "transaction_id"
        not in (await get_event(hs, bob.access_token, room_id, first.event_id))["unsigned"]
    )
    assert (await get_event(hs, laptop, room_id, other["event_id"]))["unsigned"][
        "transaction_id"
    ] == "txn1"


async def test_send_errors_write_nothing(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice)
    before = await event_count(hs, room_id)
    base = f"{V3}/rooms/{room_id}/send/m.room.message"
    for body, errcode in [([1, 2], "M_BAD_JSON"), ("text", "M_BAD_JSON")]:
        status, got = await hs.request("PUT", f"{base}/t1", token=alice.access_token, json=body)
        assert (status, got["errcode"]) == (400, errcode)
    status, got = await hs.request("PUT", f"{base}/t2", token=alice.access_token, data=b"{not json")
    assert (status, got["errcode"]) == (400, "M_NOT_JSON")
    status, got = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/send/m.room.create/t3", token=alice.access_token, json={}
    )
    assert (status, got["errcode"]) == (403, "M_FORBIDDEN")
    not_member = await bob.room_send(room_id, "m.room.message", TEXT)
    assert isinstance(not_member, nio.RoomSendError) and not_member.status_code == "M_FORBIDDEN"
    unknown = await alice.room_send("!nowhere:localhost", "m.room.message", TEXT)
    assert isinstance(unknown, nio.RoomSendError) and unknown.status_code == "M_NOT_FOUND"
    assert unknown.transport_response.status == 404
    assert await event_count(hs, room_id) == before


async def test_state_put_and_get(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public, room_version="10")
    await bob.join(room_id)
    token = alice.access_token
    state_path = f"{V3}/rooms/{room_id}/state"

    put = await alice.room_put_state(room_id, "m.room.name", {"name": "First"})
    assert isinstance(put, nio.RoomPutStateResponse), put
    got = await bob.room_get_state_event(room_id, "m.room.name")
    assert isinstance(got, nio.RoomGetStateEventResponse) and got.content == {"name": "First"}
    # The empty state key, with and without the trailing slash.
    status, body = await hs.request(
        "PUT", f"{state_path}/m.room.name/", token=token, json={"name": "Second"}
    )
    assert status == 200, body
    for path in (f"{state_path}/m.room.name", f"{state_path}/m.room.name/"):
        assert await hs.request("GET", path, token=token) == (200, {"name": "Second"})
    status, full = await hs.request("GET", f"{state_path}/m.room.name?format=event", token=token)
    assert status == 200
    assert full["event_id"] == body["event_id"] and full["state_key"] == ""
    assert full["unsigned"]["prev_content"] == {"name": "First"}

    # A state key of one's own; then a key that is another user's id is refused.
    status, body = await hs.request(
        "PUT", f"{state_path}/org.example.pin/@alice:localhost", token=token, json={"on": 1}
    )
    assert status == 200, body
    got = await alice.room_get_state_event(room_id, "org.example.pin", "@alice:localhost")
    assert got.content == {"on": 1}
    status, body = await hs.request(
        "PUT", f"{state_path}/org.example.pin/@bob:localhost", token=token, json={"on": 1}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # Missing state is 404; an empty key is not the same as another key.
    missing = await alice.room_get_state_event(room_id, "m.room.topic")
    assert isinstance(missing, nio.RoomGetStateEventError)
    assert missing.status_code == "M_NOT_FOUND"
    status, body = await hs.request("GET", f"{state_path}/m.room.name/other", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # GET /state: the current state, one event per key.
    state = await bob.room_get_state(room_id)
    assert isinstance(state, nio.RoomGetStateResponse), state
    keys = sorted((e["type"], e["state_key"]) for e in state.events)
    assert keys == sorted(
        [
            ("m.room.create", ""),
            ("m.room.member", "@alice:localhost"),
            ("m.room.member", "@bob:localhost"),
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
            ("m.room.history_visibility", ""),
            ("m.room.name", ""),
            ("org.example.pin", "@alice:localhost"),
        ]
    )
    name = next(e for e in state.events if e["type"] == "m.room.name")
    assert name["content"] == {"name": "Second"} and name["sender"] == "@alice:localhost"


async def test_state_refusals_write_nothing(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public)
    await bob.join(room_id)
    before = await event_count(hs, room_id)
    # Bob (power 0) may not rename the room (needs 50).
    refused = await bob.room_put_state(room_id, "m.room.name", {"name": "Bob's"})
    assert isinstance(refused, nio.RoomPutStateError) and refused.status_code == "M_FORBIDDEN"
    status, body = await hs.request(
        "PUT", f"{V3}/rooms/{room_id}/state/m.room.name", token=alice.access_token, json=[1]
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    outsider = await login("carol")
    # (nio reads any JSON answer here as content, so this one is raw HTTP.)
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{room_id}/state/m.room.create", token=outsider.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    unknown = await alice.room_get_state("!nowhere:localhost")
    assert isinstance(unknown, nio.RoomGetStateError) and unknown.status_code == "M_NOT_FOUND"
    assert await event_count(hs, room_id) == before


async def test_setting_the_same_state_again_adds_nothing(hs, login):
    alice = await login("alice")
    room_id = await create(alice)
    first = await alice.room_put_state(room_id, "m.room.topic", {"topic": "t"})
    before = await event_count(hs, room_id)
    again = await alice.room_put_state(room_id, "m.room.topic", {"topic": "t"})
    assert again.event_id == first.event_id
    assert await event_count(hs, room_id) == before
    changed = await alice.room_put_state(room_id, "m.room.topic", {"topic": "u"})
    assert changed.event_id != first.event_id


async def test_redaction(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await create(alice, visibility=nio.RoomVisibility.public, room_version="10")
    await bob.join(room_id)
    alices = await alice.room_send(room_id, "m.room.message", TEXT)
    bobs = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "mine"})
    mine = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "oops"})

    # Bob may redact his own event but not Alice's (redact needs 50).
    refused = await bob.room_redact(room_id, alices.event_id)
    assert isinstance(refused, nio.RoomRedactError) and refused.status_code == "M_FORBIDDEN"
    assert (
        "redacted_because"
        not in (await get_event(hs, bob.access_token, room_id, alices.event_id))["unsigned"]
    )
    own = await bob.room_redact(room_id, mine.event_id, reason="typo")
    assert isinstance(own, nio.RoomRedactResponse), own
    # Alice, a moderator, may redact Bob's.
    moderated = await alice.room_redact(room_id, bobs.event_id)
    assert isinstance(moderated, nio.RoomRedactResponse), moderated

    served = await get_event(hs, alice.access_token, room_id, mine.event_id)
    assert served["content"] == {}
    because = served["unsigned"]["redacted_because"]
    assert because["event_id"] == own.event_id
    assert because["sender"] == "@bob:localhost"
    assert because["content"] == {"reason": "typo"}
    assert because["redacts"] == mine.event_id  # room 10: top-level redacts
    served = await get_event(hs, bob.access_token, room_id, bobs.event_id)
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["sender"] == "@alice:localhost"
    # The redaction event itself.
    redaction = await get_event(hs, bob.access_token, room_id, own.event_id)
    assert redaction["type"] == "m.room.redaction" and redaction["redacts"] == mine.event_id
    # The original stays in the database.
    stored = await hs.pool.fetchval("SELECT json FROM events WHERE event_id = $1", mine.event_id)
    assert json.loads(stored)["content"] == {"msgtype": "m.text", "body": "oops"}
    # Alice's message is untouched.
    assert (await get_event(hs, bob.access_token, room_id, alices.event_id))["content"] == TEXT


async def test_redaction_keeps_what_the_room_version_keeps(hs, login):
    alice = await login("alice")
    levels = {"users": {"@alice:localhost": 100}, "invite": 10, "ban": 60}
    for version, kept in [
        ("10", {"users": {"@alice:localhost": 100}, "ban": 60}),
        ("11", {"users": {"@alice:localhost": 100}, "ban": 60, "invite": 10}),
    ]:
        room_id = await create(
            alice,
            room_version=version,
            initial_state=[{"type": "m.room.power_levels", "content": levels}],
        )
        status, pl = await hs.request(
            "GET",
            f"{V3}/rooms/{room_id}/state/m.room.power_levels?format=event",
            token=alice.access_token,
        )
        assert (status, pl["content"]) == (200, levels)
        redaction = await alice.room_redact(room_id, pl["event_id"])
        assert isinstance(redaction, nio.RoomRedactResponse), redaction
        served = await get_event(hs, alice.access_token, room_id, pl["event_id"])
        assert served["content"] == kept, version
        because = served["unsigned"]["redacted_because"]
        if version == "11":
            # From room 11 the redacted event's id is in the content.
            assert because["content"] == {"redacts": pl["event_id"]}
            assert "redacts" not in because
        # Current state serves the event as redacted too.
        current = await alice.room_get_state_event(room_id, "m.room.power_levels")
        assert current.content == kept


async def test_departed_users_read_the_state_as_it_was(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    carol = await login("carol")
    room_id = await create(alice, visibility=nio.RoomVisibility.public, name="Before")
    await bob.join(room_id)
    await bob.room_leave(room_id)
    await alice.room_put_state(room_id, "m.room.name", {"name": "After"})

    name = await bob.room_get_state_event(room_id, "m.room.name")
    assert name.content == {"name": "Before"}
    state = await bob.room_get_state(room_id)
    assert isinstance(state, nio.RoomGetStateResponse), state
    by_key = {(e["type"], e["state_key"]): e for e in state.events}
    assert by_key[("m.room.name", "")]["content"] == {"name": "Before"}
    assert by_key[("m.room.member", "@bob:localhost")]["content"]["membership"] == "leave"
    # Someone who never was in the room reads nothing...
    status, body = await hs.request("GET", f"{V3}/rooms/{room_id}/state", token=carol.access_token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # ...unless the room is world readable.
    await alice.room_put_state(
        room_id, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    name = await carol.room_get_state_event(room_id, "m.room.name")
    assert name.content == {"name": "After"}
