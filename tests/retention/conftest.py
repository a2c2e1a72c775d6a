"""Helpers of the retention and legal hold tests: a server with retention on,
rooms with a policy, messages (some with media), and a remote server's view."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.admin.conftest import Admin, make_admin
from tests.conftest import RunningServer
from tests.federation.conftest import remote, remote_factory  # noqa: F401 (fixtures)
from tests.test_media import get, png, upload

V3 = "/_matrix/client/v3"
MEDIA = "/_matrix/client/v1/media"
DAY = 24 * 60 * 60 * 1000
# The job runs only when a test asks (besides once at start-up).
RETENTION = {"enabled": True, "purge_interval_ms": DAY, "purge_batch_size": 2}


def room_path(room_id: str) -> str:
    return quote(room_id, safe="")


async def make_room(
    hs: RunningServer, token: str, policy: dict[str, Any] | None, *, world_readable: bool = True
) -> str:
    initial_state: list[dict[str, Any]] = []
    if world_readable:
        initial_state.append(
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        )
    if policy is not None:
        initial_state.append({"type": "m.room.retention", "state_key": "", "content": policy})
    status, body = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=token,
        json={"preset": "public_chat", "initial_state": initial_state},
    )
    assert status == 200, body
    return body["room_id"]


async def put_message(
    hs: RunningServer, token: str, room_id: str, content: dict[str, Any], txn: str
) -> str:
    status, body = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_path(room_id)}/send/m.room.message/{txn}",
        token=token,
        json=content,
    )
    assert status == 200, body
    return body["event_id"]


async def upload_image(hs: RunningServer, token: str, color: tuple[int, int, int]) -> str:
    status, body = await upload(hs, token, png(4, 4, color))
    assert status == 200, body
    return body["content_uri"]


def image(mxc: str, thumbnail: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"mimetype": "image/png"}
    if thumbnail is not None:
        info["thumbnail_url"] = thumbnail
    return {"msgtype": "m.image", "body": "a picture", "url": mxc, "info": info}


async def download_status(hs: RunningServer, token: str, mxc: str) -> int:
    status, _, _ = await get(hs, f"{MEDIA}/download/{mxc[len('mxc://') :]}", token)
    return status


@pytest.fixture
async def retention_hs(server_factory: Any) -> RunningServer:
    return await server_factory(retention=RETENTION, federation_insecure=True)


@pytest.fixture
async def retention_admin(retention_hs: RunningServer) -> Admin:
    return await make_admin(retention_hs)
