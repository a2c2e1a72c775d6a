"""The media repository over real HTTP: uploads, downloads, thumbnails,
storage on disk, limits, quarantine, safe headers and URL previews."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nio
import pytest
from aiohttp import web
from PIL import Image

from homeserver.config import MediaConfig
from homeserver.media.expiry import ExpiryResult, MediaExpiry
from homeserver.media.headers import content_disposition
from homeserver.media.safe_fetch import AddressPolicy
from homeserver.media.thumbnailer import Candidate, candidates, choose
from storage.database import now_ms
from storage.media import MediaStore
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
    row = await hs.pool.fetchrow(
        "SELECT user_id, content_type, upload_name, media_length, last_access_ts FROM local_media"
    )
    assert row["user_id"] == "@alice:localhost"
    assert (row["content_type"], row["upload_name"]) == ("image/png", "red.png")
    assert row["media_length"] == len(data)
    assert row["last_access_ts"] is not None


async def test_download_needs_a_token(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, png(8, 8))
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(body['content_uri'])}")
    assert status == 401
    assert b"M_MISSING_TOKEN" in got


async def test_unknown_media_not_found(hs: RunningServer, alice: str) -> None:
    # Remote media (fetched over federation) is tested in
    # tests/federation/test_media_federation.py.
    status, got, _ = await get(hs, f"{MEDIA}/download/localhost/nosuchmedia", alice)
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


async def stored_state(hs: RunningServer, tmp_path: Path) -> tuple[int, list[Path]]:
    rows = await hs.pool.fetchval("SELECT count(*) FROM local_media")
    return rows, content_files(tmp_path)


async def test_oversized_upload_is_refused(server_factory: Any, tmp_path: Path) -> None:
    hs = await server_factory(media={"max_upload_size": 1000})
    token = (await hs.register("alice"))["access_token"]
    status, body = await hs.request("GET", f"{MEDIA}/config", token=token)
    assert body == {"m.upload.size": 1000}

    # Declared too large by Content-Length.
    status, body = await upload(hs, token, b"x" * 1001, "application/octet-stream")
    assert status == 413
    assert body["errcode"] == "M_TOO_LARGE"

    # Sent without a length (chunked): refused once the limit is crossed.
    async def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 300

    async with hs.http.post(
        hs.url + UPLOAD,
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["errcode"] == "M_TOO_LARGE"
    assert await stored_state(hs, tmp_path) == (0, [])
    assert list((tmp_path / "media" / "tmp").iterdir()) == []

    # Exactly at the limit is fine, and larger than the API's usual body limit
    # is not a problem for media.
    status, body = await upload(hs, token, b"z" * 1000, "application/octet-stream")
    assert status == 200


async def test_upload_larger_than_request_body_limit(server_factory: Any) -> None:
    hs = await server_factory(max_request_body_bytes=1024)
    token = (await hs.register("alice"))["access_token"]
    data = png(400, 400) + b"\0" * 4096
    status, body = await upload(hs, token, data)
    assert status == 200, body
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(body['content_uri'])}", token)
    assert (status, got) == (200, data)


async def test_security_headers(hs: RunningServer, alice: str) -> None:
    _, body = await upload(hs, alice, b"<script>alert(1)</script>", "text/html", "x.html")
    status, got, headers = await get(
        hs, f"{MEDIA}/download/{media_path(body['content_uri'])}", alice
    )
    assert status == 200
    assert got == b"<script>alert(1)</script>"
    assert headers["Content-Type"] == "text/html; charset=UTF-8"
    assert headers["Content-Disposition"] == "attachment; filename=x.html"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == (
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
        "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
    )
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert headers["Access-Control-Allow-Origin"] == "*"

    for content_type in ("image/svg+xml", "application/javascript", "text/xml"):
        _, body = await upload(hs, alice, b"<x/>", content_type)
        _, _, headers = await get(hs, f"{MEDIA}/download/{media_path(body['content_uri'])}", alice)
        assert headers["Content-Disposition"] == "attachment", content_type

    _, body = await upload(hs, alice, b"hello", "text/plain", "h%C3%A9llo%20w%C3%B6rld.txt")
    _, got, headers = await get(hs, f"{MEDIA}/download/{media_path(body['content_uri'])}", alice)
    assert headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert headers["Content-Disposition"] == (
        "inline; filename*=utf-8''h%C3%A9llo%20w%C3%B6rld.txt"
    )


async def test_create_then_upload(hs: RunningServer, alice: str) -> None:
    bob = (await hs.register("bob"))["access_token"]
    status, body = await hs.request("POST", "/_matrix/media/v1/create", token=alice)
    assert status == 200
    mxc = body["content_uri"]
    assert body["unused_expires_at"] > 0
    put_path = f"{UPLOAD}/{media_path(mxc)}"

    # Not uploaded yet: downloads wait for it, then give up.
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(mxc)}?timeout_ms=0", alice)
    assert status == 504 and b"M_NOT_YET_UPLOADED" in got

    status, body = await hs.request(
        "PUT", put_path, token=bob, data=b"bob's", headers={"Content-Type": "text/plain"}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    data = png(10, 10)
    status, body = await hs.request(
        "PUT",
        put_path + "?filename=a.png",
        token=alice,
        data=data,
        headers={"Content-Type": "image/png"},
    )
    assert (status, body) == (200, {})
    status, got, headers = await get(hs, f"{MEDIA}/download/{media_path(mxc)}", alice)
    assert (status, got) == (200, data)
    assert headers["Content-Disposition"] == "inline; filename=a.png"

    status, body = await hs.request(
        "PUT", put_path, token=alice, data=b"again", headers={"Content-Type": "text/plain"}
    )
    assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(mxc)}", alice)
    assert got == data

    status, body = await hs.request(
        "PUT", f"{UPLOAD}/localhost/unknownmedia", token=alice, data=b"x"
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_pending_uploads_are_limited(hs: RunningServer, alice: str) -> None:
    for _ in range(5):
        status, _ = await hs.request("POST", "/_matrix/media/v1/create", token=alice)
        assert status == 200
    status, body = await hs.request("POST", "/_matrix/media/v1/create", token=alice)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] > 0


async def test_quota(server_factory: Any, tmp_path: Path) -> None:
    hs = await server_factory(media={"max_user_quota_bytes": 1500})
    alice = (await hs.register("alice"))["access_token"]
    bob = (await hs.register("bob"))["access_token"]
    assert (await upload(hs, alice, b"a" * 1000, "text/plain"))[0] == 200
    status, body = await upload(hs, alice, b"b" * 600, "text/plain")
    assert (status, body["errcode"]) == (400, "M_RESOURCE_LIMIT_EXCEEDED")
    assert len(content_files(tmp_path)) == 1
    assert (await upload(hs, alice, b"c" * 500, "text/plain"))[0] == 200
    # The quota is per user.
    assert (await upload(hs, bob, b"b" * 600, "text/plain"))[0] == 200


async def test_quarantined_media_is_not_served(hs: RunningServer, alice: str) -> None:
    user_id = "@alice:localhost"
    mxcs = [(await upload(hs, alice, png(16, 16, (i, i, i))))[1]["content_uri"] for i in range(3)]
    ids = [media_id(m) for m in mxcs]
    manager = hs.server.media_manager
    assert await manager.protect(ids[2])
    assert await manager.quarantine([ids[0]], "@admin:localhost") == 1
    for mxc, expected in zip(mxcs, (404, 200, 200), strict=True):
        status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(mxc)}", alice)
        assert status == expected
        status, got, _ = await thumbnail(hs, alice, mxc, "width=32&height=32&method=crop")
        assert status == expected, got
    # A user's quarantine spares protected media.
    assert await manager.quarantine_user(user_id, "@admin:localhost") == 1
    statuses = [(await get(hs, f"{MEDIA}/download/{media_path(m)}", alice))[0] for m in mxcs]
    assert statuses == [404, 404, 200]
    assert await manager.unquarantine(ids[0])
    assert (await get(hs, f"{MEDIA}/download/{media_path(mxcs[0])}", alice))[0] == 200

    page, total = await manager.user_media(user_id, offset=1, limit=1)
    assert total == 3
    assert [m.media_id for m in page] == [ids[1]]
    assert page[0].quarantined_by == "@admin:localhost"


async def test_legacy_endpoints(hs: RunningServer, alice: str) -> None:
    token = alice
    data = png(50, 50)
    _, body = await upload(hs, token, data)
    path = media_path(body["content_uri"])
    # Authenticated media enforced: the legacy endpoints do not serve it.
    for legacy in (
        f"/_matrix/media/v3/download/{path}",
        f"/_matrix/media/v3/thumbnail/{path}?width=32&height=32",
    ):
        status, got, _ = await get(hs, legacy)
        assert status == 404 and b"M_NOT_FOUND" in got


async def test_legacy_endpoints_without_authenticated_media(server_factory: Any) -> None:
    hs = await server_factory(media={"enable_authenticated_media": False})
    token = (await hs.register("alice"))["access_token"]
    data = png(50, 50)
    _, body = await upload(hs, token, data, filename="p.png")
    path = media_path(body["content_uri"])
    status, got, headers = await get(hs, f"/_matrix/media/v3/download/{path}")
    assert (status, got) == (200, data)
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, got, _ = await get(hs, f"/_matrix/media/r0/download/{path}/q.png")
    assert (status, got) == (200, data)
    status, got, _ = await get(
        hs, f"/_matrix/media/v3/thumbnail/{path}?width=32&height=32&method=crop"
    )
    assert status == 200
    assert Image.open(io.BytesIO(got)).size == (32, 32)


PAGE = """<!doctype html><html><head>
<title>Fallback title</title>
<meta property="og:title" content="A page &amp; its title">
<meta property="og:description" content="What the page is about">
<meta property="og:image" content="/picture.png">
</head><body>hello</body></html>"""


@pytest.fixture
async def website() -> AsyncIterator[tuple[str, list[str]]]:
    """A local web site with an OpenGraph page, an image and a redirect."""
    hits: list[str] = []
    picture = png(120, 60, (0, 128, 0))

    async def page(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text=PAGE, content_type="text/html")

    async def image(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=picture, content_type="image/png")

    async def plain(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="<title>No OG here</title>", content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/picture.png", image)
    app.router.add_get("/plain", plain)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


async def preview(hs: RunningServer, token: str, url: str) -> tuple[int, Any]:
    return await hs.request("GET", f"{MEDIA}/preview_url?url={quote(url, safe='')}", token=token)


async def test_preview_disabled_by_default(hs: RunningServer, alice: str) -> None:
    status, body = await preview(hs, alice, "https://example.org/")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await hs.request("GET", f"{MEDIA}/preview_url?url=https://example.org/")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_preview_refuses_private_addresses(
    server_factory: Any, website: tuple[str, list[str]]
) -> None:
    base, hits = website
    hs = await server_factory(media={"url_preview_enabled": True})
    token = (await hs.register("alice"))["access_token"]
    for url in (
        base + "/page",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://127.1/",
        "http://2130706433/",
    ):
        status, body = await preview(hs, token, url)
        assert status == 403, (url, body)
    # A name resolving to loopback is refused at resolution, as Synapse does.
    port = base.rsplit(":", 1)[1]
    status, body = await preview(hs, token, f"http://localhost:{port}/page")
    assert status == 502, body
    # Only http and https.
    status, body = await preview(hs, token, "ftp://example.org/")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert hits == []


async def test_preview_with_whitelist(
    server_factory: Any, website: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, hits = website
    hs = await server_factory(
        media={"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"]}
    )
    token = (await hs.register("alice"))["access_token"]
    status, og = await preview(hs, token, base + "/page")
    assert status == 200, og
    assert og["og:title"] == "A page & its title"
    assert og["og:description"] == "What the page is about"
    assert og["og:image"].startswith("mxc://localhost/")
    assert og["og:image:width"] == 120 and og["og:image:height"] == 60
    assert og["og:image:type"] == "image/png"
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(og['og:image'])}", token)
    assert status == 200
    assert og["matrix:image:size"] == len(got)
    assert Image.open(io.BytesIO(got)).size == (120, 60)
    assert hits == ["/page", "/picture.png"]

    # Cached: asked again, the site is not fetched again.
    status, again = await preview(hs, token, base + "/page")
    assert (status, again) == (200, og)
    assert hits == ["/page", "/picture.png"]

    status, og = await preview(hs, token, base + "/plain")
    assert (status, og) == (200, {"og:title": "No OG here"})

    # Redirects are followed, each hop checked: one to a blocked address fails.
    status, og = await preview(hs, token, f"{base}/redirect?to=/plain")
    assert (status, og) == (200, {"og:title": "No OG here"})
    status, body = await preview(hs, token, f"{base}/redirect?to=http://10.0.0.1/")
    assert status == 403, body


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),
        ("192.168.7.7", True),
    ],
)
def test_address_policy(host: str, allowed: bool) -> None:
    policy = AddressPolicy(["192.168.7.0/24"])
    assert policy.allowed(host) is allowed


def test_thumbnail_choice() -> None:
    sizes = MediaConfig().thumbnail_sizes
    # A 1000x500 image: scale candidates 320x160, 640x320, 800x400.
    scale = candidates(sizes, 1000, 500, "scale")
    assert [(c.width, c.height) for c in scale] == [(320, 160), (640, 320), (800, 400)]
    assert choose(scale, 300, 150) == Candidate(320, 160, "scale")
    assert choose(scale, 10, 10) == Candidate(320, 160, "scale")
    assert choose(scale, 5000, 5000) == Candidate(800, 400, "scale")
    # A 20x20 image is never enlarged.
    small = candidates(sizes, 20, 20, "scale")
    assert {(c.width, c.height) for c in small} == {(20, 20)}
    crop = candidates(sizes, 1000, 500, "crop")
    assert choose(crop, 40, 40) == Candidate(96, 96, "crop")
    assert choose(crop, 20, 20) == Candidate(32, 32, "crop")
    assert choose(crop, 500, 500) == Candidate(96, 96, "crop")


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("image/png", None, "inline"),
        ("image/png", "a.png", "inline; filename=a.png"),
        ("IMAGE/PNG; x=y", "a b.png", "inline; filename*=utf-8''a%20b.png"),
        ("image/svg+xml", "x.svg", "attachment; filename=x.svg"),
        ("text/html", None, "attachment"),
        ("application/octet-stream", "été.bin", "attachment; filename*=utf-8''%C3%A9t%C3%A9.bin"),
        ("text/plain", 'a";\r\nX: y', "inline; filename*=utf-8''a%22%3B%0D%0AX%3A%20y"),
    ],
)
def test_content_disposition(content_type: str, filename: str | None, expected: str) -> None:
    assert content_disposition(content_type, filename) == expected


async def test_expiry(server_factory: Any, website: tuple[str, list[str]], tmp_path: Path) -> None:
    base, _ = website
    hs = await server_factory(
        media={"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"]}
    )
    token = (await hs.register("alice"))["access_token"]
    status, og = await preview(hs, token, base + "/page")
    assert status == 200 and "og:image" in og
    status, _ = await hs.request("POST", "/_matrix/media/v1/create", token=token)
    assert status == 200
    kept = png(5, 5)
    _, body = await upload(hs, token, kept)
    assert await hs.pool.fetchval("SELECT count(*) FROM local_media") == 3
    assert len(content_files(tmp_path)) == 2

    expiry = MediaExpiry(
        MediaStore(hs.pool), hs.server.media_manager, unused_expiration_time_ms=1000
    )
    # Too early for the preview image; the reservation has expired.
    assert await expiry.run_once(now_ms() + 60_000) == ExpiryResult(pending=1, url_cache=0)
    three_days = 3 * 24 * 60 * 60 * 1000
    assert await expiry.run_once(now_ms() + three_days) == ExpiryResult(pending=0, url_cache=1)
    assert [f.read_bytes() for f in content_files(tmp_path)] == [kept]
    status, got, _ = await get(hs, f"{MEDIA}/download/{media_path(body['content_uri'])}", token)
    assert (status, got) == (200, kept)


async def test_client_hanging_up_mid_upload_is_a_disconnect(
    hs: RunningServer, alice: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", hs.server.client_port)
    writer.write(
        (
            f"POST {UPLOAD} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {alice}\r\nContent-Type: image/png\r\n"
            "Content-Length: 100000\r\n\r\n"
        ).encode()
        + b"x" * 1000
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        if any("disconnect" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not [r for r in caplog.records if " 500 " in r.getMessage()]
    assert any("disconnect" in r.getMessage() for r in caplog.records)
    # Nothing of it was kept.
    assert await hs.pool.fetchval("SELECT count(*) FROM local_media") == 0
    assert list((Path(hs.server.config.data_dir) / "media" / "tmp").iterdir()) == []
