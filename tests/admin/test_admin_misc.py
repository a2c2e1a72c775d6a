"""Admin API: event reports, server notices, server version, background updates,
and the make-admin command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.admin.conftest import ADMIN, V3


async def reported_room(hs: Any) -> dict[str, Any]:
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    status, room = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=alice["access_token"],
        json={"preset": "public_chat", "name": "Market"},
    )
    room_id = room["room_id"]
    await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    status, sent = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/1",
        token=bob["access_token"],
        json={"msgtype": "m.text", "body": "cheap watches"},
    )
    for reason in ("spam", "still spam"):
        status, _ = await hs.request(
            "POST",
            f"{V3}/rooms/{room_id}/report/{sent['event_id']}",
            token=alice["access_token"],
            json={"reason": reason, "score": -100},
        )
        assert status == 200
    return {"room_id": room_id, "event_id": sent["event_id"]}


async def test_event_reports_list_get_delete(admin):
    room = await reported_room(admin.hs)
    status, body = await admin.call("GET", "/v1/event_reports")
    assert status == 200 and body["total"] == 2
    newest = body["event_reports"][0]
    assert newest["reason"] == "still spam"
    assert {k: newest[k] for k in ("room_id", "event_id", "user_id", "sender", "name")} == {
        "room_id": room["room_id"],
        "event_id": room["event_id"],
        "user_id": "@alice:localhost",
        "sender": "@bob:localhost",
        "name": "Market",
    }
    status, body = await admin.call("GET", "/v1/event_reports?dir=f&limit=1")
    assert body["event_reports"][0]["reason"] == "spam" and body["next_token"] == 1
    status, body = await admin.call("GET", "/v1/event_reports?user_id=nobody")
    assert body["total"] == 0

    status, report = await admin.call("GET", f"/v1/event_reports/{newest['id']}")
    assert report["event_json"]["content"]["body"] == "cheap watches"
    status, _ = await admin.call("DELETE", f"/v1/event_reports/{newest['id']}")
    assert status == 200
    status, _ = await admin.call("GET", f"/v1/event_reports/{newest['id']}")
    assert status == 404
    status, body = await admin.call("GET", "/v1/event_reports/abc")
    assert status == 400


async def test_server_notice_arrives_in_a_tagged_room_from_an_invite(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    token = alice["access_token"]
    notice = {"msgtype": "m.text", "body": "Maintenance tonight"}
    status, body = await admin.call(
        "POST", "/v1/send_server_notice", {"user_id": "@alice:localhost", "content": notice}
    )
    assert status == 200, body
    status, sync = await hs.request("GET", f"{V3}/sync", token=token)
    (room_id,) = sync["rooms"]["invite"]
    invite_state = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert {"type": "m.room.name", "content": {"name": "Notices"}} in [
        {"type": e["type"], "content": e["content"]} for e in invite_state
    ]
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=token)
    assert status == 200
    status, tags = await hs.request(
        "GET", f"{V3}/user/@alice:localhost/rooms/{room_id}/tags", token=token
    )
    assert "m.server_notice" in tags["tags"]
    status, page = await hs.request("GET", f"{V3}/rooms/{room_id}/messages?dir=b", token=token)
    messages = [e for e in page["chunk"] if e["type"] == "m.room.message"]
    assert [(e["sender"], e["content"]) for e in messages] == [("@notices:localhost", notice)]
    # Members cannot write in it.
    status, _ = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/1",
        token=token,
        json={"msgtype": "m.text", "body": "reply"},
    )
    assert status == 403

    # The second notice goes to the same room.
    status, body = await admin.call(
        "POST",
        "/v1/send_server_notice",
        {"user_id": "@alice:localhost", "content": {"msgtype": "m.text", "body": "Done"}},
    )
    assert status == 200
    status, joined = await hs.request("GET", f"{V3}/joined_rooms", token=token)
    assert joined["joined_rooms"] == [room_id]


async def test_server_notices_off_without_config(server_factory):
    from tests.admin.conftest import make_admin

    admin = await make_admin(await server_factory())
    status, body = await admin.call(
        "POST", "/v1/send_server_notice", {"user_id": admin.user_id, "content": {}}
    )
    assert status == 400


async def test_server_version_and_background_updates(admin):
    status, body = await admin.call("GET", "/v1/server_version")
    assert status == 200 and isinstance(body["server_version"], str)
    status, body = await admin.call("GET", "/v1/background_updates/status")
    assert body == {"enabled": True, "current_updates": {}}
    status, body = await admin.call("POST", "/v1/background_updates/enabled", {"enabled": False})
    assert body == {"enabled": False}
    status, body = await admin.call("GET", "/v1/background_updates/enabled")
    assert body == {"enabled": False}


async def test_make_admin_command(hs, database, tmp_path: Path):
    user = await hs.register("promoted")
    path = tmp_path / "homeserver.yaml"
    path.write_text(
        yaml.safe_dump(
            {"server_name": "localhost", "database": {"dsn": database}, "bcrypt_rounds": 4}
        )
    )
    status, _ = await hs.request("GET", f"{ADMIN}/v1/server_version", token=user["access_token"])
    assert status == 403

    async def run(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "homeserver",
            *args,
            "--config",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        return process.returncode, out.decode()

    code, out = await run("make-admin", "promoted")
    assert code == 0, out
    assert "@promoted:localhost is now a server admin" in out
    status, _ = await hs.request("GET", f"{ADMIN}/v1/server_version", token=user["access_token"])
    assert status == 200
    code, out = await run("make-admin", "@nobody:localhost")
    assert code == 1 and "does not exist" in out
