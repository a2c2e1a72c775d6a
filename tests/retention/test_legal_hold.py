"""Legal holds over the admin API: placing, reading, listing and lifting
holds on rooms and users, their audit entries and bad input, and the purge
job leaving held events alone until the hold is lifted."""

from __future__ import annotations

from typing import Any

from storage.database import now_ms
from tests.admin.conftest import Admin
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.retention.conftest import (
    DAY,
    V3,
    download_status,
    image,
    make_room,
    put_message,
    room_path,
    upload_image,
)

V1 = "/_matrix/federation/v1"


async def fed_content(hs: RunningServer, remote: ScriptedRemote, event_id: str) -> Any:
    status, body = await remote.request(hs, "GET", f"{V1}/event/{event_id}")
    assert status == 200, body
    return body["pdus"][0]["content"]


async def test_room_on_hold_is_not_purged_until_lifted(
    retention_hs: RunningServer, retention_admin: Admin, remote: ScriptedRemote
) -> None:
    hs, admin = retention_hs, retention_admin
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice, {"max_lifetime": DAY})
    mxc = await upload_image(hs, alice, (1, 2, 3))
    ids = [await put_message(hs, alice, room, image(mxc), "i")]
    ids += [
        await put_message(hs, alice, room, {"msgtype": "m.text", "body": f"evidence {i}"}, f"t{i}")
        for i in range(3)
    ]
    status, hold = await admin.call(
        "PUT", f"/v1/legal_holds/rooms/{room_path(room)}", {"reason": "case 42"}
    )
    assert status == 200, hold
    assert (hold["kind"], hold["target"], hold["reason"]) == ("room", room, "case 42")
    assert (hold["placed_by"], hold["placed"]) == (admin.user_id, True)

    later = now_ms() + 2 * DAY
    assert (await hs.server.purge_job.run_once(later)).expired == 0
    assert (await fed_content(hs, remote, ids[1]))["body"] == "evidence 0"
    assert await download_status(hs, alice, mxc) == 200

    status, _ = await admin.call("DELETE", f"/v1/legal_holds/rooms/{room_path(room)}")
    assert status == 200
    result = await hs.server.purge_job.run_once(later)
    assert (result.expired, result.media) == (4, 1)
    assert await fed_content(hs, remote, ids[1]) == {}
    assert await download_status(hs, alice, mxc) == 404


async def test_user_on_hold_keeps_their_messages_only(
    retention_hs: RunningServer, retention_admin: Admin, remote: ScriptedRemote
) -> None:
    hs, admin = retention_hs, retention_admin
    alice_body = await hs.register("alice")
    alice, alice_id = alice_body["access_token"], alice_body["user_id"]
    bob = (await hs.register("bob"))["access_token"]
    room = await make_room(hs, alice, {"max_lifetime": DAY})
    status, _ = await hs.request("POST", f"{V3}/join/{room_path(room)}", token=bob, json={})
    assert status == 200
    # The same file in a held and an unheld message: the held one keeps it.
    mxc = await upload_image(hs, alice, (9, 9, 9))
    held = await put_message(hs, alice, room, image(mxc), "a")
    free = await put_message(hs, bob, room, image(mxc), "b")
    status, _ = await admin.call("PUT", f"/v1/legal_holds/users/{alice_id}", {"reason": "audit"})
    assert status == 200

    result = await hs.server.purge_job.run_once(now_ms() + 2 * DAY)
    assert (result.expired, result.media) == (1, 0)
    assert (await fed_content(hs, remote, held))["url"] == mxc
    assert await fed_content(hs, remote, free) == {}
    assert await download_status(hs, alice, mxc) == 200


async def test_admin_api_reads_lists_and_audits(retention_admin: Admin) -> None:
    admin = retention_admin
    room = "!evidence:localhost"
    status, first = await admin.call("PUT", f"/v1/legal_holds/rooms/{room}", {"reason": "first"})
    assert status == 200 and first["placed"] is True
    # Placing it again keeps the first hold.
    status, again = await admin.call("PUT", f"/v1/legal_holds/rooms/{room}", {"reason": "second"})
    assert status == 200 and (again["placed"], again["reason"]) == (False, "first")
    status, _ = await admin.call("PUT", "/v1/legal_holds/users/@carol:localhost", {"reason": "x"})
    assert status == 200

    status, one = await admin.call("GET", f"/v1/legal_holds/rooms/{room}")
    assert status == 200 and (one["target"], one["reason"]) == (room, "first")
    status, listed = await admin.call("GET", "/v1/legal_holds")
    assert status == 200 and listed["total"] == 2
    assert {(h["kind"], h["target"]) for h in listed["holds"]} == {
        ("room", room),
        ("user", "@carol:localhost"),
    }

    status, _ = await admin.call("DELETE", "/v1/legal_holds/users/@carol:localhost")
    assert status == 200
    status, body = await admin.call("GET", "/v1/legal_holds/users/@carol:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await admin.call("DELETE", "/v1/legal_holds/users/@carol:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    status, log = await admin.call("GET", "/v1/audit_log?dir=f")
    assert status == 200
    entries = [
        (e["action"], e["target"], e["status"], e["params"])
        for e in log["entries"]
        if e["action"].startswith("legal_hold.")
    ]
    assert entries == [
        ("legal_hold.place", room, 200, {"body": {"reason": "first"}}),
        ("legal_hold.place", room, 200, {"body": {"reason": "second"}}),
        ("legal_hold.place", "@carol:localhost", 200, {"body": {"reason": "x"}}),
        ("legal_hold.lift", "@carol:localhost", 200, {}),
        ("legal_hold.lift", "@carol:localhost", 404, {}),
    ]


async def test_bad_input_changes_nothing(
    retention_hs: RunningServer, retention_admin: Admin
) -> None:
    hs, admin = retention_hs, retention_admin
    cases: list[tuple[str, Any, int, str]] = [
        ("/v1/legal_holds/rooms/not-a-room", {"reason": "r"}, 400, "M_INVALID_PARAM"),
        ("/v1/legal_holds/rooms/!r:localhost", {}, 400, "M_MISSING_PARAM"),
        ("/v1/legal_holds/rooms/!r:localhost", {"reason": 5}, 400, "M_INVALID_PARAM"),
        ("/v1/legal_holds/rooms/!r:localhost", {"reason": "  "}, 400, "M_INVALID_PARAM"),
        ("/v1/legal_holds/rooms/!r:localhost", {"reason": "x" * 2001}, 400, "M_INVALID_PARAM"),
        ("/v1/legal_holds/rooms/!r:localhost", [1], 400, "M_BAD_JSON"),
        ("/v1/legal_holds/users/carol", {"reason": "r"}, 400, "M_INVALID_PARAM"),
    ]
    for path, body, want_status, errcode in cases:
        status, answer = await admin.call("PUT", path, body)
        assert (status, answer.get("errcode")) == (want_status, errcode), (path, body, answer)
    status, answer = await hs.request(
        "PUT",
        "/_synapse/admin/v1/legal_holds/rooms/!r:localhost",
        token=admin.token,
        data=b"{not json",
    )
    assert status == 400 and answer["errcode"] == "M_NOT_JSON"
    # Only admins.
    user = (await hs.register("mallory"))["access_token"]
    status, answer = await hs.request(
        "PUT",
        "/_synapse/admin/v1/legal_holds/rooms/!r:localhost",
        token=user,
        json={"reason": "r"},
    )
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")
    status, answer = await hs.request("GET", "/_synapse/admin/v1/legal_holds", token=user)
    assert status == 403
    status, listed = await admin.call("GET", "/v1/legal_holds")
    assert listed == {"holds": [], "total": 0}
