"""What the export tests send to a server, and how they read an export back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs

from tests.conftest import RunningServer

V3 = "/_matrix/client/v3"
REMOTE_ORIGIN = "remote.example.org"
REMOTE_MEDIA_ID = "cachedRemoteFile"


@attrs.define
class Scenario:
    """Alice's and Bob's rooms, messages, redaction, media and account data."""

    alice: str
    alice_token: str
    bob: str
    main_room: str
    other_room: str
    # Alice's messages in the main room, in order: (event id, body).
    alice_messages: list[tuple[str, str]]
    bob_message: str
    redacted_id: str
    redacted_body: str
    image: bytes
    image_mxc: str
    unsent_upload: bytes
    unsent_mxc: str
    remote_bytes: bytes


async def call(hs: RunningServer, token: str, method: str, path: str, body: Any = None) -> Any:
    status, answer = await hs.request(method, V3 + path, token=token, json=body)
    assert status == 200, (path, answer)
    return answer


async def upload(hs: RunningServer, token: str, data: bytes, content_type: str) -> str:
    status, body = await hs.request(
        "POST",
        "/_matrix/media/v3/upload",
        token=token,
        data=data,
        headers={"Content-Type": content_type},
    )
    assert status == 200, body
    return body["content_uri"]


async def send(hs: RunningServer, token: str, room: str, content: dict[str, Any]) -> str:
    sent = await call(hs, token, "POST", f"/rooms/{room}/send/m.room.message", content)
    return sent["event_id"]


async def cache_remote_media(hs: RunningServer, data: bytes) -> None:
    """A file of another server, as media fetched over federation is kept: its bytes in
    the media store (through MediaFiles, encrypted when the store is) and its row."""
    files = hs.server.media_files
    received = files.receive_bytes(data)
    files.place(received)
    await hs.pool.execute(
        """INSERT INTO remote_media (origin, media_id, content_type, upload_name,
               media_length, sha256, created_ts) VALUES ($1, $2, 'text/plain', 'r.txt', $3, $4, 1)""",
        REMOTE_ORIGIN,
        REMOTE_MEDIA_ID,
        len(data),
        received.sha256,
    )


async def build(hs: RunningServer) -> Scenario:
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    await call(
        hs, a, "PUT", f"/profile/{alice['user_id']}/displayname", {"displayname": "Alice A."}
    )
    main_room = (
        await call(hs, a, "POST", "/createRoom", {"name": "Sales", "preset": "public_chat"})
    )["room_id"]
    other_room = (await call(hs, a, "POST", "/createRoom", {}))["room_id"]
    await call(hs, b, "POST", f"/rooms/{main_room}/join", {})

    image = b"\x89PNG pretend image " * 1000
    image_mxc = await upload(hs, a, image, "image/png")
    unsent = b"never posted anywhere\n" * 100
    unsent_mxc = await upload(hs, a, unsent, "text/plain")
    remote = b"a file from another server\n" * 50
    await cache_remote_media(hs, remote)

    messages = []
    for body in ("hello everyone", "the forecast is attached"):
        messages.append((await send(hs, a, main_room, {"msgtype": "m.text", "body": body}), body))
    image_event = await send(
        hs, a, main_room, {"msgtype": "m.image", "body": "chart.png", "url": image_mxc}
    )
    messages.append((image_event, "chart.png"))
    redacted_body = "oops, wrong room: salaries.xlsx"
    redacted_id = await send(hs, a, main_room, {"msgtype": "m.text", "body": redacted_body})
    messages.append((redacted_id, redacted_body))
    await call(
        hs, a, "PUT", f"/rooms/{main_room}/redact/{redacted_id}/t1", {"reason": "wrong room"}
    )
    bob_message = await send(
        hs,
        b,
        main_room,
        {
            "msgtype": "m.file",
            "body": "r.txt",
            "url": f"mxc://{REMOTE_ORIGIN}/{REMOTE_MEDIA_ID}",
        },
    )
    await send(hs, a, other_room, {"msgtype": "m.text", "body": "note to self"})

    await call(
        hs,
        a,
        "PUT",
        f"/user/{alice['user_id']}/account_data/org.example.settings",
        {"theme": "dark"},
    )
    await call(
        hs,
        a,
        "PUT",
        f"/user/{alice['user_id']}/rooms/{main_room}/account_data/org.example.pinned",
        {"pinned": True},
    )
    return Scenario(
        alice["user_id"],
        a,
        bob["user_id"],
        main_room,
        other_room,
        messages,
        bob_message,
        redacted_id,
        redacted_body,
        image,
        image_mxc,
        unsent,
        unsent_mxc,
        remote,
    )


async def room_timeline(hs: RunningServer, token: str, room: str) -> list[dict[str, Any]]:
    """Every event of a room as a member's client sees it (/messages from the start)."""
    body = await call(hs, token, "GET", f"/rooms/{room}/messages?dir=f&limit=1000")
    return body["chunk"]


def read_lines(root: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / name).read_text().splitlines()]


def check_manifest(root: Path) -> dict[str, Any]:
    """The manifest lists every other file of the export, with its true SHA-256 and size."""
    manifest = json.loads((root / "manifest.json").read_text())
    on_disk = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    assert sorted(f["path"] for f in manifest["files"]) == on_disk
    for entry in manifest["files"]:
        data = (root / entry["path"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    return manifest


def media_file(root: Path, mxc: str) -> Path:
    return root / "media" / mxc[len("mxc://") :]
