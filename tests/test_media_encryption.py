"""Media encrypted at rest: the file format, then a server over real HTTP.

What a user and an administrator check: the bytes on disk are not the
upload, every download (whole, by range, thumbnail, over federation) gives
back the exact bytes, the master key can be rotated and turned on for an
existing store, and a wrong or missing key stops the server from starting.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from homeserver.__main__ import main
from homeserver.media.encryption import (
    HEADER_SIZE,
    SEGMENT,
    CorruptMediaError,
    DecryptingReader,
    EncryptingWriter,
    MasterKey,
    MediaKeyError,
)
from homeserver.media.key_commands import encrypt_existing, rotate
from homeserver.server import HomeServer
from tests.conftest import RunningServer, make_config, start_server

MEDIA = "/_matrix/client/v1/media"


def encrypt(data: bytes, master: MasterKey, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(out, master)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
    writer.close()
    return out.getvalue()


def decrypt(sealed: bytes, master: MasterKey, start: int = 0, stop: int | None = None) -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hs-enc-{secrets.token_hex(8)}"
    path.write_bytes(sealed)
    try:
        with path.open("rb") as f:
            reader = DecryptingReader(f, master)
            return b"".join(reader.read_range(start, stop))
    finally:
        path.unlink()


@pytest.mark.parametrize("length", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 5])
def test_round_trip_and_ranges(length: int) -> None:
    master = MasterKey.generate()
    data = secrets.token_bytes(length)
    sealed = encrypt(data, master)
    assert len(data) < 16 or data[:16] not in sealed
    assert decrypt(sealed, master) == data
    for start, stop in [(0, 1), (length // 2, length), (SEGMENT - 3, SEGMENT + 3), (5, 5)]:
        assert decrypt(sealed, master, start, stop) == data[start:stop]


def test_tampering_is_detected() -> None:
    master = MasterKey.generate()
    data = secrets.token_bytes(2 * SEGMENT + 100)
    sealed = encrypt(data, master)
    flipped = bytearray(sealed)
    flipped[HEADER_SIZE + SEGMENT + 40] ^= 1
    with pytest.raises(CorruptMediaError):
        decrypt(bytes(flipped), master)
    # Cut at a segment boundary: every remaining segment is intact, but the
    # new last one was not sealed as the last.
    with pytest.raises(CorruptMediaError):
        decrypt(sealed[: HEADER_SIZE + 2 * (SEGMENT + 16)], master)
    with pytest.raises(CorruptMediaError):
        decrypt(sealed, MasterKey.generate())


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 220)).save(out, "PNG")
    return out.getvalue()


def stored_files(data_dir: Path) -> list[Path]:
    root = data_dir / "media"
    return [p for sub in ("content", "thumbnails") for p in (root / sub).rglob("*") if p.is_file()]


def key_file(directory: Path, name: str = "media.key") -> Path:
    path = directory / name
    assert main(["media-key", "generate", "--out", str(path)]) == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path


def encryption(key: Path) -> dict[str, Any]:
    return {"media": {"encryption": {"enabled": True, "master_key_path": str(key)}}}


async def upload(hs: RunningServer, token: str, data: bytes, content_type: str) -> str:
    status, body = await hs.request(
        "POST",
        "/_matrix/media/v3/upload",
        token=token,
        data=data,
        headers={"Content-Type": content_type},
    )
    assert status == 200, body
    return body["content_uri"][len("mxc://") :]


async def download(
    hs: RunningServer, token: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, Any]:
    async with hs.http.get(
        hs.url + path, headers={"Authorization": f"Bearer {token}", **(headers or {})}
    ) as resp:
        return resp.status, await resp.read(), resp.headers


async def test_files_on_disk_are_encrypted_and_download_exactly(
    server_factory: Any, tmp_path: Path
) -> None:
    hs = await server_factory(**encryption(key_file(tmp_path)))
    token = (await hs.register("alice"))["access_token"]
    image = png(400, 300)
    document = b"quarterly figures: confidential\n" * 5000
    image_media = await upload(hs, token, image, "image/png")
    doc_media = await upload(hs, token, document, "text/plain")

    on_disk = stored_files(tmp_path)
    assert len(on_disk) == 2
    for path in on_disk:
        raw = path.read_bytes()
        assert b"confidential" not in raw
        assert not raw.startswith(b"\x89PNG")

    status, got, headers = await download(hs, token, f"{MEDIA}/download/{doc_media}")
    assert (status, got) == (200, document)
    assert headers["Content-Type"].startswith("text/plain")
    status, got, _ = await download(hs, token, f"{MEDIA}/download/{image_media}")
    assert (status, got) == (200, image)

    # A byte range straddling two encrypted segments.
    status, got, headers = await download(
        hs, token, f"{MEDIA}/download/{doc_media}", {"Range": "bytes=65530-65545"}
    )
    assert status == 206
    assert got == document[65530:65546]
    assert headers["Content-Range"] == f"bytes 65530-65545/{len(document)}"
    status, got, _ = await download(
        hs, token, f"{MEDIA}/download/{doc_media}", {"Range": "bytes=-10"}
    )
    assert (status, got) == (206, document[-10:])
    status, _, headers = await download(
        hs, token, f"{MEDIA}/download/{doc_media}", {"Range": f"bytes={len(document)}-"}
    )
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(document)}"

    status, thumb, headers = await download(
        hs, token, f"{MEDIA}/thumbnail/{image_media}?width=32&height=32&method=crop"
    )
    assert status == 200, thumb
    with Image.open(io.BytesIO(thumb)) as small:
        assert small.size == (32, 32)
    thumbnails = [p for p in stored_files(tmp_path) if "thumbnails" in p.parts]
    assert len(thumbnails) == 1
    assert thumbnails[0].read_bytes() != thumb
    assert int(headers["Content-Length"]) == len(thumb)


async def test_wrong_or_missing_key_stops_the_start(database: str, tmp_path: Path) -> None:
    key = key_file(tmp_path)
    hs = await start_server(make_config(database, tmp_path, **encryption(key)))
    await hs.http.close()
    await hs.server.stop()

    other = key_file(tmp_path, "other.key")
    for overrides, message in [
        (encryption(other), "not the one the media store"),
        ({}, "is encrypted, but media.encryption names no master key"),
        (encryption(tmp_path / "absent.key"), "cannot read the media master key file"),
    ]:
        server = HomeServer(make_config(database, tmp_path, **overrides))
        with pytest.raises(MediaKeyError, match=message):
            await server.start()


async def test_rotation_keeps_every_file_readable(database: str, tmp_path: Path) -> None:
    old_key = key_file(tmp_path, "old.key")
    hs = await start_server(make_config(database, tmp_path, **encryption(old_key)))
    try:
        token = (await hs.register("alice"))["access_token"]
        blobs = [secrets.token_bytes(n) for n in (10, SEGMENT + 7, 3 * SEGMENT)]
        media = [await upload(hs, token, blob, "application/octet-stream") for blob in blobs]
        image = await upload(hs, token, png(120, 90), "image/png")
        status, thumb, _ = await download(
            hs, token, f"{MEDIA}/thumbnail/{image}?width=96&height=96&method=crop"
        )
        assert status == 200
    finally:
        await hs.http.close()
        await hs.server.stop()

    files_before = {p: p.read_bytes()[HEADER_SIZE:] for p in stored_files(tmp_path)}
    new_key = key_file(tmp_path, "new.key")
    root = tmp_path / "media"
    old, new = (MasterKey.decode(k.read_text(), str(k)) for k in (old_key, new_key))
    assert rotate(root, old, new) == len(files_before)
    # Only the headers changed: the content was not re-encrypted.
    assert {p: p.read_bytes()[HEADER_SIZE:] for p in stored_files(tmp_path)} == files_before
    # Running it again (after an interruption, say) does nothing more.
    assert rotate(root, old, new) == 0

    with pytest.raises(MediaKeyError):
        await HomeServer(make_config(database, tmp_path, **encryption(old_key))).start()
    hs = await start_server(make_config(database, tmp_path, **encryption(new_key)))
    try:
        for blob, media_id in zip(blobs, media, strict=True):
            status, got, _ = await download(hs, token, f"{MEDIA}/download/{media_id}")
            assert (status, got) == (200, blob)
        status, again, _ = await download(
            hs, token, f"{MEDIA}/thumbnail/{image}?width=96&height=96&method=crop"
        )
        assert (status, again) == (200, thumb)
    finally:
        await hs.http.close()
        await hs.server.stop()


async def test_turning_encryption_on_for_an_existing_store(database: str, tmp_path: Path) -> None:
    hs = await start_server(make_config(database, tmp_path))
    try:
        token = (await hs.register("alice"))["access_token"]
        plain = b"stored before encryption " * 1000
        media_id = await upload(hs, token, plain, "text/plain")
    finally:
        await hs.http.close()
        await hs.server.stop()
    assert [p.read_bytes() for p in stored_files(tmp_path)] == [plain]

    key = key_file(tmp_path)
    master = MasterKey.decode(key.read_text(), str(key))
    assert encrypt_existing(tmp_path / "media", master) == 1
    assert b"stored before" not in stored_files(tmp_path)[0].read_bytes()
    assert encrypt_existing(tmp_path / "media", master) == 0

    hs = await start_server(make_config(database, tmp_path, **encryption(key)))
    try:
        status, got, _ = await download(hs, token, f"{MEDIA}/download/{media_id}")
        assert (status, got) == (200, plain)
    finally:
        await hs.http.close()
        await hs.server.stop()


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from homeserver.media.encryption import load_master_key

    key = MasterKey.generate()
    monkeypatch.setenv("HS_MEDIA_KEY", key.encoded())
    assert load_master_key(None, "HS_MEDIA_KEY").key_id == key.key_id
    monkeypatch.setenv("HS_MEDIA_KEY", "not base64!")
    with pytest.raises(MediaKeyError, match="not base64"):
        load_master_key(None, "HS_MEDIA_KEY")
    monkeypatch.setenv("HS_MEDIA_KEY", MasterKey.generate().encoded()[:20])
    with pytest.raises(MediaKeyError):
        load_master_key(None, "HS_MEDIA_KEY")
    monkeypatch.delenv("HS_MEDIA_KEY")
    with pytest.raises(MediaKeyError, match="is not set"):
        load_master_key(None, "HS_MEDIA_KEY")
