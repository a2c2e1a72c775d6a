"""POST /_synapse/admin/v1/user/{user_id}/redact: a background job redacts
all of a user's events in the named rooms (or everywhere), with its status
and progress at GET /_synapse/admin/v1/user/redact_status/{redact_id}."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from storage.legal_holds import LegalHoldStore
from storage.user_redactions import RedactJob, UserRedactionStore
from tests.admin.conftest import Admin, make_admin
from tests.conftest import RunningServer
from tests.erasure.helpers import V3, erase_by_admin, event
from tests.sliding_sync.helpers import User, new_user


async def admin_user(hs: RunningServer) -> tuple[Admin, User]:
    """An admin, also as a room user (who creates the rooms and so may redact)."""
    admin = await make_admin(hs, "root")
    return admin, User(hs, {"user_id": admin.user_id, "access_token": admin.token})


async def room_with(owner: User, *members: User) -> str:
    room = await owner.create_room(preset="public_chat")
    for member in members:
        await member.join(room)
    return room


async def start(admin: Admin, user_id: str, body: dict[str, Any]) -> str:
    status, started = await admin.call("POST", f"/v1/user/{quote(user_id)}/redact", body)
    assert status == 200, started
    return str(started["redact_id"])


async def finished(admin: Admin, redact_id: str) -> dict[str, Any]:
    """The job's status once it is no longer scheduled or active (polled)."""
    for _ in range(400):
        status, body = await admin.call("GET", f"/v1/user/redact_status/{redact_id}")
        assert status == 200, body
        if body["status"] not in ("scheduled", "active"):
            return dict(body)
        await asyncio.sleep(0.025)
    raise AssertionError(f"redaction job still running: {body}")


async def redacted_by(user: User, room: str, event_id: str) -> str | None:
    """The id of the redaction of the event, as a client sees it."""
    seen = await event(user, room, event_id)
    return seen.get("unsigned", {}).get("redacted_because", {}).get("event_id")


async def test_redacts_every_event_of_the_user_in_the_named_rooms(hs: RunningServer) -> None:
    admin, root = await admin_user(hs)
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    first, second, other = [await room_with(root, alice, bob) for _ in range(3)]
    mine = [await alice.send(room, f"spam {i}") for room in (first, second) for i in range(3)]
    kept = await alice.send(other, "elsewhere")
    bobs = await bob.send(first, "not spam")

    redact_id = await start(admin, alice.user_id, {"rooms": [first, second], "reason": "spam"})
    status, progress = await admin.call("GET", f"/v1/user/redact_status/{redact_id}")
    assert status == 200 and progress["status"] in ("scheduled", "active", "completed")
    assert 0 <= progress["redacted"] <= progress["total"] <= 8
    done = await finished(admin, redact_id)
    # Alice's messages and her joins in the two rooms.
    assert done == {"status": "completed", "failed_redactions": {}, "redacted": 8, "total": 8}

    for event_id in mine:
        room = first if event_id in mine[:3] else second
        seen = await event(bob, room, event_id)
        assert seen["content"] == {}
        redaction = seen["unsigned"]["redacted_because"]
        assert redaction["sender"] == admin.user_id
        assert redaction["content"]["reason"] == "spam"
    assert (await event(bob, other, kept))["content"]["body"] == "elsewhere"
    assert (await event(bob, first, bobs))["content"]["body"] == "not spam"
    # The redactions are real events in the room's timeline.
    page = await bob.call("GET", f"{V3}/rooms/{first}/messages?dir=b&limit=50")
    redactions = [e for e in page["chunk"] if e["type"] == "m.room.redaction"]
    assert len(redactions) == 4

    # A second run finds nothing left to redact.
    again = await finished(admin, await start(admin, alice.user_id, {"rooms": [first]}))
    assert (again["status"], again["redacted"], again["total"]) == ("completed", 0, 0)

    # The request is in the audit log.
    status, audit = await admin.call("GET", "/v1/audit_log?action=user.redact_events")
    assert status == 200, audit
    assert [e["target"] for e in audit["entries"]] == [alice.user_id] * 2


async def test_empty_rooms_means_everywhere_and_limit_is_per_room(hs: RunningServer) -> None:
    admin, root = await admin_user(hs)
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    rooms = [await room_with(root, alice, bob) for _ in range(2)]
    sent = {room: [await alice.send(room, f"m{i}") for i in range(3)] for room in rooms}
    bobs = await bob.send(rooms[0], "bob's")
    await erase_by_admin(hs, alice.user_id)

    # Two per room, newest first.
    done = await finished(admin, await start(admin, alice.user_id, {"rooms": [], "limit": 2}))
    assert (done["status"], done["redacted"], done["total"]) == ("completed", 4, 4)
    for room in rooms:
        states = [await redacted_by(bob, room, e) is not None for e in sent[room]]
        assert states == [False, True, True]
    done = await finished(admin, await start(admin, alice.user_id, {"rooms": []}))
    assert done["status"] == "completed" and done["failed_redactions"] == {}
    for room in rooms:
        for event_id in sent[room]:
            assert await redacted_by(bob, room, event_id) is not None
    assert await redacted_by(bob, rooms[0], bobs) is None


async def test_held_events_are_redacted_and_kept(hs: RunningServer) -> None:
    """A hold does not stop a redaction (visible moderation); the original
    content stays stored for the hold."""
    admin, root = await admin_user(hs)
    alice = await new_user(hs, "alice")
    room = await room_with(root, alice)
    said = await alice.send(room, "evidence")
    await LegalHoldStore(hs.pool).place("user", alice.user_id, "case 9", admin.user_id)
    done = await finished(admin, await start(admin, alice.user_id, {"rooms": [room]}))
    assert done["status"] == "completed"
    assert (await event(root, room, said))["content"] == {}
    stored = await hs.pool.fetchval("SELECT json FROM events WHERE event_id = $1", said)
    assert "evidence" in stored


async def test_failures_are_reported_per_event(hs: RunningServer) -> None:
    """In a room where the admin may not redact, each redaction fails."""
    admin, root = await admin_user(hs)
    alice, bob = await new_user(hs, "alice"), await new_user(hs, "bob")
    room = await room_with(bob, alice)
    said = await alice.send(room, "out of reach")
    done = await finished(admin, await start(admin, alice.user_id, {"rooms": [room]}))
    assert done["status"] == "completed" and done["redacted"] == 0
    assert said in done["failed_redactions"]
    assert isinstance(done["failed_redactions"][said], str)
    assert (await event(bob, room, said))["content"]["body"] == "out of reach"


async def test_bad_input_non_admins_and_unknown_ids(hs: RunningServer) -> None:
    admin, root = await admin_user(hs)
    alice = await new_user(hs, "alice")
    room = await room_with(root, alice)
    said = await alice.send(room, "still here")
    path = f"/v1/user/{quote(alice.user_id)}/redact"
    for body in (
        {},
        {"rooms": "everywhere"},
        {"rooms": [room, 7]},
        {"rooms": ["not-a-room"]},
        {"rooms": [], "limit": 0},
        {"rooms": [], "limit": "10"},
        {"rooms": [], "reason": 5},
        {"rooms": [], "use_admin": "yes"},
        {"rooms": [], "after_ts": -1},
    ):
        status, error = await admin.call("POST", path, body)
        assert status == 400, (body, error)
        assert error["errcode"] in ("M_INVALID_PARAM", "M_MISSING_PARAM", "M_BAD_JSON")
    status, error = await admin.call("POST", "/v1/user/not-a-user/redact", {"rooms": []})
    assert status == 400, error
    status, error = await hs.request(
        "POST", f"/_synapse/admin{path}", token=alice.token, json={"rooms": []}
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    status, error = await hs.request(
        "GET", "/_synapse/admin/v1/user/redact_status/nope", token=alice.token
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    status, error = await admin.call("GET", "/v1/user/redact_status/nope")
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    # Nothing was started by any of it.
    assert await hs.pool.fetchval("SELECT count(*) FROM user_redactions") == 0
    assert (await event(root, room, said))["content"]["body"] == "still here"


async def test_an_unfinished_job_resumes_at_start_up(server_factory: Any) -> None:
    """A job whose server stopped mid-way is taken up by the next start."""
    hs = await server_factory()
    admin, root = await admin_user(hs)
    alice = await new_user(hs, "alice")
    room = await room_with(root, alice)
    said = await alice.send(room, "left over")
    await UserRedactionStore(hs.pool).create(
        RedactJob(
            redact_id="interrupted",
            user_id=alice.user_id,
            admin_id=admin.user_id,
            rooms=(room,),
            reason=None,
            max_per_room=1000,
            after_ts=None,
            before_ts=None,
            status="active",
            total=0,
            redacted=0,
            failed_redactions={},
            error=None,
        ),
        None,
    )
    restarted = await server_factory()
    again = Admin(restarted, admin.token, admin.user_id)
    done = await finished(again, "interrupted")
    assert (done["status"], done["redacted"]) == ("completed", 2)
    assert await redacted_by(root, room, said) is not None
