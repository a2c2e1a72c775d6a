"""The media repository over real HTTP: uploads, downloads, thumbnails,
storage on disk, limits, quarantine, safe headers and URL previews."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import nio
import pytest
from PIL import Image

from tests.conftest import RunningServer

UPLOAD = "/_matrix/media/v3/upload"
MEDIA = "/_matrix/client/v1/media"


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def animated_gif(width: int, height: int, frames: int = 3) -> bytes:
    images = [Image.new("RGB", (width, height), (i * 80, 0, 255 - i * 80)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


async def upload(
    hs: RunningServer,
    token: str,
    data: bytes,
    content_type: str = "image/png",
    filename: str | None = None,
) -> tuple[int, Any]:
    path = UPLOAD + (f"?filename={filename}" if filename else "")
    return await hs.request(
        "POST", path, token=token, data=data, headers={"Content-Type": content_type}
    )


async def get(hs: RunningServer, path: str, token: str | None = None) -> tuple[int, bytes, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with hs.http.get(hs.url + path, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


def media_path(mxc: str) -> str:
    assert mxc.startswith("mxc://")
    return mxc[len("mxc://") :]


def content_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "media" / "content").rglob("*") if p.is_file()]


@pytest.fixture
async def alice(hs: RunningServer) -> str:
    return (await hs.register("alice"))["access_token"]


async def test_upload_and_download_byte_exact(hs: RunningServer, alice: str) -> None:
    data = png(64, 48)
    status, body = await upload(hs, alice, data, filename="red.png")
    assert status == 200, body
    assert body["content_uri"].startswith("mxc://localhost/")
    server_media = media_path(body["content_uri"])

    status, got, headers = await get(hs, f"{MEDIA}/download/{server_media}", alice)
    assert status == 200
    assert got == data
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == "inline; filename=red.png"

    status, got, headers = await get(hs, f"{MEDIA}/download/{server_media}/other.png", alice)
    assert status == 200
    assert got == data
    assert headers["Content-Disposition"] == "inline; filename=other.png"


async def test_download_needs_a_token(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, png(8, 8))
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(body['content_uri'])}")
    assert status == 401
    assert b"M_MISSING_TOKEN" in got


async def test_unknown_and_remote_media_not_found(hs: RunningServer, alice: str) -> None:
    for path in ("localhost/nosuchmedia", "elsewhere.example/abc"):
        status, got, _ = await get(hs, f"{MEDIA}/download/{path}", alice)
        assert status == 404
        assert b"M_NOT_FOUND" in got


async def test_config(hs: RunningServer, alice: str) -> None:
    for path in (f"{MEDIA}/config", "/_matrix/media/v3/config"):
        status, body = await hs.request("GET", path, token=alice)
        assert status == 200
        assert body == {"m.upload.size": 50 * 1024 * 1024}


async def test_nio_upload_and_download(hs: RunningServer, login: Any) -> None:
    client = await login("niouser")
    data = png(20, 10, (1, 2, 3))
    resp, _ = await client.upload(
        io.BytesIO(data), content_type="image/png", filename="n.png", filesize=len(data)
    )
    assert isinstance(resp, nio.UploadResponse), resp
    downloaded = await client.download(resp.content_uri)
    assert isinstance(downloaded, nio.DownloadResponse), downloaded
    assert downloaded.body == data
    assert downloaded.filename == "n.png"


async def test_same_bytes_are_stored_once(hs: RunningServer, alice: str, tmp_path: Path) -> None:
    data = png(30, 30, (9, 9, 9))
    _, first = await upload(hs, alice, data)
    _, second = await upload(hs, alice, data)
    assert first["content_uri"] != second["content_uri"]
    files = content_files(tmp_path)
    assert len(files) == 1
    assert files[0].read_bytes() == data
    for mxc in (first["content_uri"], second["content_uri"]):
        status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(mxc)}", alice)
        assert (status, got) == (200, data)

    # Deleting one media id keeps the file for the other; deleting both removes it.
    manager = hs.server.media_manager
    assert await manager.delete(media_path(first["content_uri"]).split("/")[1])
    assert len(content_files(tmp_path)) == 1
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(second['content_uri'])}", alice)
    assert (status, got) == (200, data)
    assert await manager.delete(media_path(second["content_uri"]).split("/")[1])
    assert content_files(tmp_path) == []
    assert await hs.pool.fetchval("SELECT count(*) FROM local_media") == 0


def media_id(mxc: str) -> str:
    return mxc.rsplit("/", 1)[1]


async def thumbnail(hs: RunningServer, token: str, mxc: str, query: str) -> tuple[int, bytes, Any]:
    return await get(hs, f"{MEDIA}/thumbnail/{media_path(mxc)}?{query}", token)


async def test_thumbnail_scale_and_crop(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, png(1000, 500))
    mxc = body["content_uri"]
    cases = [
        # Scale fits the closest configured box, keeping the 2:1 aspect ratio.
        ("width=320&height=240&method=scale", (320, 160)),
        ("width=600&height=300&method=scale", (640, 320)),
        ("width=2000&height=2000&method=scale", (800, 400)),
        # Crop gives exactly a configured size, cut from the middle.
        ("width=96&height=96&method=crop", (96, 96)),
        ("width=32&height=32&method=crop", (32, 32)),
        ("width=50&height=50&method=crop", (96, 96)),
    ]
    for query, size in cases:
        status, got, headers = await thumbnail(hs, alice, mxc, query)
        assert status == 200, (query, got)
        assert headers["Content-Type"] == "image/png"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert Image.open(io.BytesIO(got)).size == size, query

    # Cached: one row per distinct thumbnail, however often it is asked for.
    await thumbnail(hs, alice, mxc, "width=96&height=96&method=crop")
    count = await hs.pool.fetchval("SELECT count(*) FROM media_thumbnails")
    assert count == 5


async def test_thumbnail_never_upscales(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, png(200, 100))
    status, got, _ = await thumbnail(hs, alice, body["content_uri"], "width=640&height=480")
    assert status == 200
    assert Image.open(io.BytesIO(got)).size == (200, 100)


async def test_crop_is_central(hs: RunningServer, alice: str) -> None:
    # Left third red, middle third green, right third blue: a square crop of
    # the middle shows green only.
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 255, 0), (100, 0, 200, 100))
    image.paste((0, 0, 255), (200, 0, 300, 100))
    out = io.BytesIO()
    image.save(out, "PNG")
    _, body = await upload(hs, alice, out.getvalue())
    status, got, _ = await thumbnail(
        hs, alice, body["content_uri"], "width=96&height=96&method=crop"
    )
    assert status == 200
    thumb = Image.open(io.BytesIO(got)).convert("RGB")
    assert thumb.size == (96, 96)
    for x in (2, 48, 93):
        red, green, blue = thumb.getpixel((x, 48))
        assert green > 200 and red < 40 and blue < 40, (x, thumb.getpixel((x, 48)))


async def test_animated_thumbnail(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, animated_gif(200, 200), "image/gif")
    mxc = body["content_uri"]
    status, got, headers = await thumbnail(
        hs, alice, mxc, "width=96&height=96&method=crop&animated=true"
    )
    assert status == 200
    assert headers["Content-Type"] == "image/webp"
    thumb = Image.open(io.BytesIO(got))
    assert thumb.is_animated and thumb.n_frames == 3
    assert thumb.size == (96, 96)

    status, got, headers = await thumbnail(hs, alice, mxc, "width=96&height=96&method=crop")
    assert status == 200
    thumb = Image.open(io.BytesIO(got))
    assert not getattr(thumb, "is_animated", False)
    assert headers["Content-Type"] == "image/png"


async def test_thumbnail_of_non_image(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, b"just text", "text/plain")
    status, got, _ = await thumbnail(hs, alice, body["content_uri"], "width=32&height=32")
    assert status == 400
    status, got, _ = await thumbnail(hs, alice, body["content_uri"], "width=x&height=32")
    assert status == 400 and b"M_INVALID_PARAM" in got
