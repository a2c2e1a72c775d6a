"""Redaction through `/send` (MSC4169, spec v1.18), in old and new room versions."""

from __future__ import annotations

from typing import Any

import nio
import pytest

V3 = "/_matrix/client/v3"
TEXT = {"msgtype": "m.text", "body": "oops"}


async def _room(client: nio.AsyncClient, version: str) -> str:
    resp = await client.room_create(visibility=nio.RoomVisibility.public, room_version=version)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def _send(client: nio.AsyncClient, room_id: str, type: str, content: dict[str, Any]) -> str:
    resp = await client.room_send(room_id, type, content)
    assert isinstance(resp, nio.RoomSendResponse), resp
    return resp.event_id


async def _event(hs: Any, token: str, room_id: str, event_id: str) -> dict[str, Any]:
    status, body = await hs.request("GET", f"{V3}/rooms/{room_id}/event/{event_id}", token=token)
    assert status == 200, body
    return body


@pytest.mark.parametrize("version", ["10", "11"])
async def test_redaction_sent_through_send_redacts(hs, login, version):
    alice = await login("alice")
    room_id = await _room(alice, version)
    target = await _send(alice, room_id, "m.room.message", TEXT)

    redaction_id = await _send(
        alice, room_id, "m.room.redaction", {"redacts": target, "reason": "typo"}
    )

    redacted = await _event(hs, alice.access_token, room_id, target)
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"]["event_id"] == redaction_id
    redaction = await _event(hs, alice.access_token, room_id, redaction_id)
    assert redaction["content"]["reason"] == "typo"
    # Where the room version keeps the target: content from 11, top level before
    # (the server moves it there, as the spec asks).
    if version == "11":
        assert redaction["content"]["redacts"] == target
    else:
        assert redaction["redacts"] == target and "redacts" not in redaction["content"]
    stored = await hs.pool.fetchval(
        "SELECT count(*) FROM redactions WHERE redacted_id = $1 AND redaction_id = $2",
        target,
        redaction_id,
    )
    assert stored == 1


async def test_redaction_through_send_obeys_power_levels_and_txn(hs, login):
    alice = await login("alice")
    bob = await login("bob")
    room_id = await _room(alice, "11")
    await bob.join(room_id)
    target = await _send(alice, room_id, "m.room.message", TEXT)
    path = f"{V3}/rooms/{room_id}/send/m.room.redaction/t1"

    # Bob (power 0) may not redact Alice's event, by this route as by /redact.
    status, body = await hs.request("PUT", path, token=bob.access_token, json={"redacts": target})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await _event(hs, bob.access_token, room_id, target))["content"] == TEXT

    # Bob may redact his own; a retry of the transaction answers the same event.
    own = await _send(bob, room_id, "m.room.message", TEXT)
    status, first = await hs.request("PUT", path, token=bob.access_token, json={"redacts": own})
    assert status == 200, first
    status, again = await hs.request("PUT", path, token=bob.access_token, json={"redacts": own})
    assert (status, again) == (200, first)
    assert (await _event(hs, bob.access_token, room_id, own))["content"] == {}


@pytest.mark.parametrize("content", [{}, {"redacts": 5}, {"redacts": "not-an-event"}])
async def test_redaction_without_a_target_is_refused(hs, login, content):
    alice = await login("alice")
    room_id = await _room(alice, "11")
    before = await hs.pool.fetchval("SELECT count(*) FROM events WHERE room_id = $1", room_id)
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.redaction/bad",
        token=alice.access_token,
        json=content,
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    after = await hs.pool.fetchval("SELECT count(*) FROM events WHERE room_id = $1", room_id)
    assert after == before
