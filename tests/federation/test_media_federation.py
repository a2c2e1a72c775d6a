"""Media over federation against a scripted remote: our media served to other
servers as multipart/mixed, and other servers' media fetched, cached and
served to our users (with the legacy endpoint for older servers)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image
from signedjson.sign import verify_signed_json
from yarl import URL

from federation.auth import parse_x_matrix, request_object
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote

FED_MEDIA = "/_matrix/federation/v1/media"
CLIENT_MEDIA = "/_matrix/client/v1/media"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def split_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/mixed body, checking its framing exactly."""
    essence, _, params = content_type.partition(";")
    assert essence.strip() == "multipart/mixed"
    name, _, boundary = params.strip().partition("=")
    assert name == "boundary" and boundary
    marker = b"--" + boundary.encode()
    assert body.startswith(marker + b"\r\n")
    assert body.endswith(b"\r\n" + marker + b"--\r\n")
    inner = body[len(marker) + 2 : -(len(marker) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + marker + b"\r\n"):
        head, _, content = raw.partition(b"\r\n\r\n")
        headers = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, content))
    return parts


def multipart(
    content: bytes | None, headers: dict[str, str], boundary: str = "b0undary"
) -> web.Response:
    """A spec-shaped answer of a remote: `{}` metadata, then bytes or a Location part."""
    second = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n".encode()
        + second
        + b"\r\n"
        + (content or b"")
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return web.Response(
        body=body, headers={"Content-Type": f"multipart/mixed; boundary={boundary}"}
    )


def signed_route(
    remote: ScriptedRemote, respond: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A remote handler that accepts only requests our server signed, and counts them."""

    async def handle(request: web.Request) -> web.StreamResponse:
        auth = parse_x_matrix(request.headers.get("Authorization", ""))
        obj = request_object(
            request.method, request.raw_path, auth.origin, remote.server_name, None
        )
        obj["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
        verify_signed_json(obj, auth.origin, remote.peer_keys[auth.key_id])
        remote.received.append((request.method, request.path, auth.origin, None))
        return await respond(request)

    return handle


async def raw_get(
    remote: ScriptedRemote, hs: RunningServer, path: str, *, signed: bool = True
) -> tuple[int, str, bytes]:
    """A GET of our federation listener by the remote: status, content type, body."""
    headers = {}
    if signed:
        headers["Authorization"] = remote.authorization("GET", hs.server.config.server_name, path)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            URL(f"https://127.0.0.1:{hs.server.federation_port}{path}", encoded=True),
            headers=headers,
            ssl=False,
        ) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def user_token(hs: RunningServer, name: str = "alice") -> str:
    return (await hs.register(name))["access_token"]


async def upload(hs: RunningServer, token: str, data: bytes, content_type: str, name: str) -> str:
    status, body = await hs.request(
        "POST",
        f"/_matrix/media/v3/upload?filename={name}",
        token=token,
        data=data,
        headers={"Content-Type": content_type},
    )
    assert status == 200, body
    return body["content_uri"].rsplit("/", 1)[1]


async def download(
    hs: RunningServer,
    token: str,
    server: str,
    media_id: str,
    kind: str = "download",
    query: str = "",
) -> tuple[int, bytes, Any]:
    path = f"{CLIENT_MEDIA}/{kind}/{path_quote(server)}/{path_quote(media_id)}{query}"
    async with hs.http.get(hs.url + path, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.read(), resp.headers


def federation_requests(remote: ScriptedRemote) -> list[str]:
    return [path for _, path, _, _ in remote.received]


# --- our media, served to other servers ---------------------------------------------------------


async def test_remote_gets_our_media_as_multipart(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = await user_token(fed_hs)
    data = png(50, 40)
    media_id = await upload(fed_hs, token, data, "image/png", "cat.png")

    status, content_type, body = await raw_get(remote, fed_hs, f"{FED_MEDIA}/download/{media_id}")

    assert status == 200
    (meta_headers, meta), (file_headers, content) = split_multipart(content_type, body)
    assert meta_headers == {"content-type": "application/json"}
    assert json.loads(meta) == {}
    assert content == data
    assert file_headers["content-type"] == "image/png"
    assert file_headers["content-disposition"] == "inline; filename=cat.png"


async def test_remote_gets_a_thumbnail_of_our_image(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = await user_token(fed_hs)
    media_id = await upload(fed_hs, token, png(400, 300), "image/png", "big.png")

    path = f"{FED_MEDIA}/thumbnail/{media_id}?width=32&height=32&method=crop"
    status, content_type, body = await raw_get(remote, fed_hs, path)

    assert status == 200
    _, (file_headers, content) = split_multipart(content_type, body)
    assert file_headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(content)).size == (32, 32)
    status, _, body = await raw_get(
        remote, fed_hs, f"{FED_MEDIA}/thumbnail/{media_id}?width=0&height=32"
    )
    assert (status, json.loads(body)["errcode"]) == (400, "M_INVALID_PARAM")


async def test_unsigned_request_is_refused(fed_hs: RunningServer, remote: ScriptedRemote) -> None:
    token = await user_token(fed_hs)
    media_id = await upload(fed_hs, token, b"secret bytes", "text/plain", "a.txt")
    for kind in ("download", "thumbnail"):
        query = "?width=32&height=32" if kind == "thumbnail" else ""
        status, _, body = await raw_get(
            remote, fed_hs, f"{FED_MEDIA}/{kind}/{media_id}{query}", signed=False
        )
        assert (status, json.loads(body)["errcode"]) == (401, "M_UNAUTHORIZED")
        assert b"secret bytes" not in body


async def test_unknown_and_quarantined_media_are_not_found(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    token = await user_token(fed_hs)
    media_id = await upload(fed_hs, token, b"soon hidden", "text/plain", "h.txt")
    status, _, body = await raw_get(remote, fed_hs, f"{FED_MEDIA}/download/nosuchmedia")
    assert (status, json.loads(body)["errcode"]) == (404, "M_NOT_FOUND")

    assert await fed_hs.server.media_manager.quarantine([media_id], "@admin:localhost") == 1
    status, _, body = await raw_get(remote, fed_hs, f"{FED_MEDIA}/download/{media_id}")
    assert (status, json.loads(body)["errcode"]) == (404, "M_NOT_FOUND")


# --- other servers' media, fetched and cached ------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serving_remote(
    remote_factory: Any,
    hs: RunningServer,
    federation: Handler,
    signed: dict[str, Handler] | None = None,
    plain: dict[str, Handler] | None = None,
) -> ScriptedRemote:
    """A remote answering the federation download endpoint with `federation`;
    `signed` and `plain` map more paths to handlers, with and without the
    signature check."""
    remote = await remote_factory(start=False)
    routes = {FED_MEDIA + "/download/{mediaId}": federation, **(signed or {})}
    for path, handler in routes.items():
        remote.app.router.add_get(path, signed_route(remote, handler))
    for path, handler in (plain or {}).items():
        remote.app.router.add_get(path, handler)
    await remote.start()
    await remote.expect_keys_of(hs)
    return remote


async def test_remote_media_is_fetched_once_then_served_from_cache(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    data = png(300, 200)

    async def federation(request: web.Request) -> web.Response:
        assert request.match_info["mediaId"] == "remotePic"
        assert request.query["timeout_ms"] == "20000"
        await asyncio.sleep(0.3)  # long enough for the parallel requests to meet
        return multipart(
            data,
            {"Content-Type": "image/png", "Content-Disposition": "inline; filename=dog.png"},
        )

    remote = await serving_remote(remote_factory, fed_hs, federation)
    token = await user_token(fed_hs)

    first = await asyncio.gather(
        *(download(fed_hs, token, remote.server_name, "remotePic") for _ in range(3))
    )
    for status, body, headers in first:
        assert status == 200
        assert body == data
        assert headers["Content-Type"] == "image/png"
        assert headers["Content-Disposition"] == "inline; filename=dog.png"
    assert federation_requests(remote) == [FED_MEDIA + "/download/remotePic"]

    status, body, _ = await download(fed_hs, token, remote.server_name, "remotePic")
    assert (status, body) == (200, data)
    status, thumb, headers = await download(
        fed_hs,
        token,
        remote.server_name,
        "remotePic",
        "thumbnail",
        "?width=32&height=32&method=crop",
    )
    assert status == 200
    assert Image.open(io.BytesIO(thumb)).size == (32, 32)
    assert len(federation_requests(remote)) == 1

    # Cached media of another server is never served onwards as ours.
    status, _, body = await raw_get(remote, fed_hs, f"{FED_MEDIA}/download/remotePic")
    assert (status, json.loads(body)["errcode"]) == (404, "M_NOT_FOUND")


async def test_location_part_is_followed(fed_hs: RunningServer, remote_factory: Any) -> None:
    data = b"%PDF-1.4 not really a pdf"
    port: list[int] = []

    async def federation(request: web.Request) -> web.Response:
        return multipart(None, {"Location": f"https://127.0.0.1:{port[0]}/cdn/file.pdf"})

    async def cdn(request: web.Request) -> web.Response:
        return web.Response(
            body=data,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf",
            },
        )

    remote = await serving_remote(remote_factory, fed_hs, federation, plain={"/cdn/file.pdf": cdn})
    port.append(remote.port)
    token = await user_token(fed_hs)

    status, body, headers = await download(fed_hs, token, remote.server_name, "doc")
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"


async def test_legacy_endpoint_when_the_remote_lacks_federation_media(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    data = b"hello from an old server"
    legacy_queries: list[dict[str, str]] = []

    async def federation(request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_UNRECOGNIZED", "error": "what?"}, status=404)

    async def legacy(request: web.Request) -> web.Response:
        legacy_queries.append(dict(request.query))
        assert request.match_info["serverName"] == remote.server_name
        return web.Response(
            body=data,
            headers={
                "Content-Type": "text/plain",
                "Content-Disposition": "inline; filename=old.txt",
            },
        )

    remote = await serving_remote(
        remote_factory,
        fed_hs,
        federation,
        signed={"/_matrix/media/v3/download/{serverName}/{mediaId}": legacy},
    )
    token = await user_token(fed_hs)

    status, body, headers = await download(fed_hs, token, remote.server_name, "oldMedia")
    assert (status, body) == (200, data)
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Content-Disposition"] == "inline; filename=old.txt"
    assert legacy_queries == [
        {"allow_remote": "false", "allow_redirect": "true", "timeout_ms": "20000"}
    ]
    assert federation_requests(remote) == [
        FED_MEDIA + "/download/oldMedia",
        f"/_matrix/media/v3/download/{remote.server_name}/oldMedia",
    ]


async def test_oversized_remote_media_is_refused(server_factory: Any, remote_factory: Any) -> None:
    hs = await server_factory(federation_insecure=True, media={"max_upload_size": 1000})

    async def federation(request: web.Request) -> web.Response:
        return multipart(b"x" * 5000, {"Content-Type": "application/octet-stream"})

    remote = await serving_remote(remote_factory, hs, federation)
    token = await user_token(hs)

    status, body, _ = await download(hs, token, remote.server_name, "huge")
    assert (status, json.loads(body)["errcode"]) == (502, "M_TOO_LARGE")
    assert await hs.pool.fetchval("SELECT count(*) FROM remote_media") == 0
    # Nothing was kept: the next request asks again (and is refused again).
    status, body, _ = await download(hs, token, remote.server_name, "huge")
    assert status == 502
    assert len(federation_requests(remote)) == 2


async def test_remote_errors_are_mapped(fed_hs: RunningServer, remote_factory: Any) -> None:
    truncated = multipart(b"cut short", {"Content-Type": "text/plain"}).body
    assert isinstance(truncated, bytes)
    answers = {
        "gone": lambda: web.json_response({"errcode": "M_NOT_FOUND", "error": "no"}, status=404),
        "notmultipart": lambda: web.Response(body=b"plain bytes", content_type="text/plain"),
        "truncated": lambda: web.Response(
            body=truncated[: -len("--b0undary--\r\n")],
            headers={"Content-Type": "multipart/mixed; boundary=b0undary"},
        ),
        # Last: a server error puts the remote in backoff.
        "broken": lambda: web.json_response({"errcode": "M_UNKNOWN", "error": "oops"}, status=500),
    }

    async def federation(request: web.Request) -> web.Response:
        return answers[request.match_info["mediaId"]]()

    remote = await serving_remote(remote_factory, fed_hs, federation)
    token = await user_token(fed_hs)
    expected = {
        "gone": (404, "M_NOT_FOUND"),
        "notmultipart": (502, "M_UNKNOWN"),
        "truncated": (502, "M_UNKNOWN"),
        "broken": (502, "M_UNKNOWN"),
    }
    for media_id, (status_wanted, errcode) in expected.items():
        status, body, _ = await download(fed_hs, token, remote.server_name, media_id)
        assert (status, json.loads(body)["errcode"]) == (status_wanted, errcode), media_id
    # Each answer was really received (and judged), and none was kept.
    assert federation_requests(remote) == [FED_MEDIA + "/download/" + m for m in expected]
    assert await fed_hs.pool.fetchval("SELECT count(*) FROM remote_media") == 0
    # A server nobody can reach.
    status, body, _ = await download(fed_hs, token, "127.0.0.1:1", "anything")
    assert (status, json.loads(body)["errcode"]) == (502, "M_UNKNOWN")


async def test_allow_remote_false_never_asks_another_server(
    server_factory: Any, remote_factory: Any
) -> None:
    hs = await server_factory(federation_insecure=True, media={"enable_authenticated_media": False})

    async def federation(request: web.Request) -> web.Response:
        return multipart(b"shared", {"Content-Type": "text/plain"})

    remote = await serving_remote(remote_factory, hs, federation)
    legacy = f"/_matrix/media/v3/download/{path_quote(remote.server_name)}/m1"

    async with hs.http.get(hs.url + legacy + "?allow_remote=false") as resp:
        assert (resp.status, (await resp.json())["errcode"]) == (404, "M_NOT_FOUND")
    assert federation_requests(remote) == []
    async with hs.http.get(hs.url + legacy) as resp:
        assert (resp.status, await resp.read()) == (200, b"shared")


async def test_remote_that_does_not_answer_times_out(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    release = asyncio.Event()

    async def federation(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 30)
        return multipart(b"too late", {"Content-Type": "text/plain"})

    remote = await serving_remote(remote_factory, fed_hs, federation)
    token = await user_token(fed_hs)

    started = time.monotonic()
    status, body, _ = await download(
        fed_hs, token, remote.server_name, "slow", query="?timeout_ms=500"
    )
    assert (status, json.loads(body)["errcode"]) == (502, "M_UNKNOWN")
    # The requester's 500 ms, passed on to the remote, plus a few seconds'
    # grace for the remote's own answer; not the 60 s of other requests.
    assert time.monotonic() - started < 10
    assert remote.received and remote.received[0][1] == FED_MEDIA + "/download/slow"
    release.set()


async def test_cached_remote_bytes_survive_deleting_a_local_copy(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    data = png(64, 64)

    async def federation(request: web.Request) -> web.Response:
        return multipart(data, {"Content-Type": "image/png"})

    remote = await serving_remote(remote_factory, fed_hs, federation)
    token = await user_token(fed_hs)
    assert (await download(fed_hs, token, remote.server_name, "shared"))[:2] == (200, data)
    # The same bytes uploaded here share the file; deleting the upload keeps it.
    local_id = await upload(fed_hs, token, data, "image/png", "same.png")
    assert await fed_hs.server.media_manager.delete(local_id)

    assert (await download(fed_hs, token, remote.server_name, "shared"))[:2] == (200, data)
    assert len(federation_requests(remote)) == 1


async def test_cached_remote_media_whose_file_is_gone_is_fetched_again(
    fed_hs: RunningServer, remote_factory: Any
) -> None:
    data = b"fetch me twice"

    async def federation(request: web.Request) -> web.Response:
        return multipart(data, {"Content-Type": "text/plain"})

    remote = await serving_remote(remote_factory, fed_hs, federation)
    token = await user_token(fed_hs)
    assert (await download(fed_hs, token, remote.server_name, "lost"))[:2] == (200, data)
    sha256 = await fed_hs.pool.fetchval("SELECT sha256 FROM remote_media WHERE media_id = 'lost'")
    files = fed_hs.server.config.path(fed_hs.server.config.media.store_path)
    (files / "content" / sha256[:2] / sha256[2:4] / sha256).unlink()

    assert (await download(fed_hs, token, remote.server_name, "lost"))[:2] == (200, data)
    assert len(federation_requests(remote)) == 2
