"""Redaction purges (Synapse's redaction_retention_period): the original
content of an event redacted longer ago than the period is pruned from the
database, except under a legal hold; before that, only readers' copies are
redacted."""

from __future__ import annotations

import json
from typing import Any

from storage.database import now_ms
from tests.admin.conftest import make_admin
from tests.conftest import RunningServer
from tests.retention.conftest import DAY, V3, make_room, put_message, room_path


async def redact(hs: RunningServer, token: str, room_id: str, event_id: str, txn: str) -> None:
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_path(room_id)}/redact/{event_id}/{txn}",
        token=token,
        json={"reason": "oops"},
    )
    assert status == 200, body


async def stored_content(hs: RunningServer, event_id: str) -> dict[str, Any]:
    """The content the database keeps (what a purge must remove)."""
    raw = await hs.pool.fetchval("SELECT json FROM events WHERE event_id = $1", event_id)
    return json.loads(raw)["content"]


async def test_redacted_content_is_pruned_after_the_period_unless_held(
    server_factory: Any,
) -> None:
    # Retention itself off: the redaction purge runs on its own, 7 days by default.
    hs = await server_factory()
    admin = await make_admin(hs)
    alice_body = await hs.register("alice")
    alice, alice_id = alice_body["access_token"], alice_body["user_id"]
    bob = (await hs.register("bob"))["access_token"]
    room = await make_room(hs, alice, None)
    status, _ = await hs.request("POST", f"{V3}/join/{room_path(room)}", token=bob, json={})
    assert status == 200
    mine = await put_message(hs, alice, room, {"msgtype": "m.text", "body": "alice's typo"}, "a")
    theirs = await put_message(hs, bob, room, {"msgtype": "m.text", "body": "bob's typo"}, "b")
    unredacted = await put_message(hs, bob, room, {"msgtype": "m.text", "body": "fine"}, "c")
    await redact(hs, alice, room, mine, "r1")
    await redact(hs, bob, room, theirs, "r2")
    status, _ = await admin.call("PUT", f"/v1/legal_holds/users/{alice_id}", {"reason": "audit"})
    assert status == 200

    job = hs.server.purge_job
    start = now_ms()
    # Redactions apply on read; the original stays for the period.
    assert (await job.run_once(start + 6 * DAY)).redacted == 0
    assert (await stored_content(hs, theirs))["body"] == "bob's typo"
    assert (await job.run_once(start + 8 * DAY)).redacted == 1
    assert await stored_content(hs, theirs) == {}
    # Held: alice's original is kept; the unredacted message is untouched.
    assert (await stored_content(hs, mine))["body"] == "alice's typo"
    assert (await stored_content(hs, unredacted))["body"] == "fine"
    # Clients still see the redacted event with its redaction.
    status, seen = await hs.request(
        "GET", f"{V3}/rooms/{room_path(room)}/event/{theirs}", token=alice
    )
    assert status == 200 and seen["content"] == {}
    assert seen["unsigned"]["redacted_because"]["type"] == "m.room.redaction"

    status, _ = await admin.call("DELETE", f"/v1/legal_holds/users/{alice_id}")
    assert status == 200
    assert (await job.run_once(start + 8 * DAY)).redacted == 1
    assert await stored_content(hs, mine) == {}
    metrics = hs.server.metrics.render().decode()
    assert 'homeserver_retention_purged_events_total{reason="redaction"} 2.0' in metrics


async def test_null_period_keeps_redacted_content(server_factory: Any) -> None:
    hs = await server_factory(redaction_retention_period_ms=None)
    # Neither retention nor redaction purges: no job at all.
    assert not hasattr(hs.server, "purge_job")
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice, None)
    event_id = await put_message(hs, alice, room, {"msgtype": "m.text", "body": "kept"}, "a")
    await redact(hs, alice, room, event_id, "r")
    assert (await stored_content(hs, event_id))["body"] == "kept"
