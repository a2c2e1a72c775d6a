"""Media over federation from and into a store encrypted at rest: other
servers get our plaintext, and other servers' media is cached encrypted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from tests.federation.conftest import ScriptedRemote
from tests.federation.test_media_federation import (
    FED_MEDIA,
    download,
    multipart,
    png,
    raw_get,
    serving_remote,
    split_multipart,
    upload,
    user_token,
)
from tests.test_media_encryption import encryption, key_file, stored_files


async def test_encrypted_store_over_federation(
    server_factory: Any, remote_factory: Any, tmp_path: Path
) -> None:
    hs = await server_factory(federation_insecure=True, **encryption(key_file(tmp_path)))
    token = await user_token(hs)
    ours = b"our minutes, sealed on disk " * 4000
    media_id = await upload(hs, token, ours, "text/plain", "minutes.txt")

    theirs = png(200, 100)

    async def federation(request: web.Request) -> web.Response:
        return multipart(theirs, {"Content-Type": "image/png"})

    remote: ScriptedRemote = await serving_remote(remote_factory, hs, federation)
    status, content_type, body = await raw_get(remote, hs, f"{FED_MEDIA}/download/{media_id}")
    assert status == 200
    (_, _), (file_headers, content) = split_multipart(content_type, body)
    assert content == ours
    assert file_headers["content-type"].startswith("text/plain")

    status, got, _ = await download(hs, token, remote.server_name, "remotePic")
    assert (status, got) == (200, theirs)
    on_disk = [path.read_bytes() for path in stored_files(tmp_path)]
    assert len(on_disk) == 2
    assert not any(b"sealed on disk" in raw or raw.startswith(b"\x89PNG") for raw in on_disk)
