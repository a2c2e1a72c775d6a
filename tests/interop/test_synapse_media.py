"""Media across servers with a real Synapse: each server's users download the
other server's uploads through their own server's authenticated media API,
byte for byte, and thumbnails of Synapse's images are made by ours."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import quote
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until

MEDIA = "/_matrix/client/v1/media"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (240, 160, 20)).save(out, "PNG")
    return out.getvalue()


async def upload(http: Any, base_url: str, token: str, data: bytes, filename: str) -> str:
    """Upload a PNG; its mxc URI."""
    async with http.post(
        f"{base_url}/_matrix/media/v3/upload?filename={filename}",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"},
    ) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body["content_uri"]


async def get(http: Any, base_url: str, token: str, path: str) -> tuple[int, bytes, Any]:
    async with http.get(base_url + path, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.read(), resp.headers


def in_synapse_log(synapse: SynapseServer, *texts: str) -> bool:
    """Whether one line of Synapse's log contains every text."""
    lines = synapse.log_path.read_text(errors="replace").splitlines()
    return any(all(text in line for text in texts) for line in lines)


def media_path(kind: str, mxc: str) -> str:
    server, media_id = mxc.removeprefix("mxc://").split("/")
    return f"{MEDIA}/{kind}/{quote(server)}/{quote(media_id)}"


async def test_synapse_upload_downloaded_through_our_server(
    synapse: SynapseServer, server_factory: Any
) -> None:
    ours = await start_federating_server(server_factory)
    token = (await ours.register("alice"))["access_token"]
    bob = await synapse.register()
    data = png(400, 300)
    mxc = await upload(synapse.http, synapse.client_url, bob.access_token, data, "sunset.png")
    assert mxc.startswith(f"mxc://{synapse.server_name}/")

    status, body, headers = await get(ours.http, ours.url, token, media_path("download", mxc))

    assert status == 200, body
    assert body == data
    assert headers["Content-Type"] == "image/png"
    assert "filename=sunset.png" in headers["Content-Disposition"]
    # Fetched over the federation media endpoint, not the legacy fallback.
    media_id = mxc.rsplit("/", 1)[1]
    await wait_until(
        lambda: in_synapse_log(
            synapse, " 200 ", f"GET /_matrix/federation/v1/media/download/{media_id}"
        ),
        "Synapse's access log of our federation media request",
    )

    for query, size in (
        ("width=32&height=32&method=crop", (32, 32)),
        ("width=320&height=240", (320, 240)),
    ):
        status, thumb, headers = await get(
            ours.http, ours.url, token, media_path("thumbnail", mxc) + "?" + query
        )
        assert status == 200, thumb
        assert headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(thumb)).size == size


async def test_our_upload_downloaded_through_synapse(
    synapse: SynapseServer, server_factory: Any
) -> None:
    ours = await start_federating_server(server_factory)
    token = (await ours.register("alice"))["access_token"]
    bob = await synapse.register()
    data = png(123, 45)
    mxc = await upload(ours.http, ours.url, token, data, "ours.png")
    assert mxc.startswith(f"mxc://{ours.server.config.server_name}/")

    status, body, headers = await get(
        synapse.http, synapse.client_url, bob.access_token, media_path("download", mxc)
    )

    assert status == 200, body
    assert body == data
    assert headers["Content-Type"] == "image/png"
    assert "filename=ours.png" in headers["Content-Disposition"]
    # Synapse parsed our multipart answer of the federation endpoint.
    media_id = mxc.rsplit("/", 1)[1]
    assert in_synapse_log(
        synapse, "Completed: 200 OK", f"/_matrix/federation/v1/media/download/{media_id}?"
    )
