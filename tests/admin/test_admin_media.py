"""Admin API: media. Quarantined media is no longer served; deleted media is gone."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import V3

UPLOAD = "/_matrix/media/v3/upload"
DOWNLOAD = "/_matrix/client/v1/media/download"


async def upload(hs: Any, token: str, data: bytes) -> str:
    async with hs.http.post(
        hs.url + UPLOAD,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        mxc = (await resp.json())["content_uri"]
    assert mxc.startswith("mxc://localhost/")
    return mxc.rsplit("/", 1)[1]


async def download(hs: Any, token: str, media_id: str) -> tuple[int, bytes]:
    async with hs.http.get(
        f"{hs.url}{DOWNLOAD}/localhost/{media_id}", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.read()


async def test_quarantine_by_id_stops_serving_until_unquarantined(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    token = alice["access_token"]
    media_id = await upload(hs, token, b"evidence")
    assert await download(hs, token, media_id) == (200, b"evidence")

    status, body = await admin.call("POST", f"/v1/media/quarantine/localhost/{media_id}")
    assert (status, body) == (200, {})
    status, _ = await download(hs, token, media_id)
    assert status == 404
    status, body = await admin.call("GET", "/v1/users/@alice:localhost/media")
    assert body["total"] == 1
    assert body["media"][0]["quarantined_by"] == admin.user_id

    await admin.call("POST", f"/v1/media/unquarantine/localhost/{media_id}")
    assert await download(hs, token, media_id) == (200, b"evidence")


async def test_protected_media_escapes_quarantine(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    token = alice["access_token"]
    media_id = await upload(hs, token, b"keep me")
    status, _ = await admin.call("POST", f"/v1/media/protect/{media_id}")
    assert status == 200
    status, body = await admin.call("POST", "/v1/user/@alice:localhost/media/quarantine")
    assert body == {"num_quarantined": 0}
    assert (await download(hs, token, media_id))[0] == 200
    await admin.call("POST", f"/v1/media/unprotect/{media_id}")
    status, body = await admin.call("POST", "/v1/user/@alice:localhost/media/quarantine")
    assert body == {"num_quarantined": 1}
    assert (await download(hs, token, media_id))[0] == 404
    status, _ = await admin.call("POST", "/v1/media/protect/unknown")
    assert status == 404


async def test_quarantine_media_of_a_room(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    token = alice["access_token"]
    shared = await upload(hs, token, b"in the room")
    elsewhere = await upload(hs, token, b"not in the room")
    status, room = await hs.request("POST", f"{V3}/createRoom", token=token, json={})
    status, _ = await hs.request(
        "PUT",
        f"{V3}/rooms/{room['room_id']}/send/m.room.message/1",
        token=token,
        json={"msgtype": "m.file", "body": "file", "url": f"mxc://localhost/{shared}"},
    )
    assert status == 200
    status, _ = await hs.request(
        "PUT",
        f"{V3}/rooms/{room['room_id']}/send/m.room.message/2",
        token=token,
        json={"msgtype": "m.image", "body": "img", "url": "mxc://elsewhere.example/abc"},
    )
    status, body = await admin.call("GET", f"/v1/room/{room['room_id']}/media")
    assert body == {
        "local": [f"mxc://localhost/{shared}"],
        "remote": ["mxc://elsewhere.example/abc"],
    }
    status, body = await admin.call("POST", f"/v1/room/{room['room_id']}/media/quarantine")
    assert (status, body) == (200, {"num_quarantined": 1})
    assert (await download(hs, token, shared))[0] == 404
    assert (await download(hs, token, elsewhere))[0] == 200


async def test_delete_by_id_by_age_and_by_user(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    token = alice["access_token"]
    one, two, three = [await upload(hs, token, b"x" * n) for n in (10, 20, 30)]

    status, body = await admin.call("DELETE", f"/v1/media/localhost/{one}")
    assert (status, body) == (200, {"deleted_media": [one], "total": 1})
    assert (await download(hs, token, one))[0] == 404
    status, _ = await admin.call("DELETE", f"/v1/media/localhost/{one}")
    assert status == 404
    status, _ = await admin.call("DELETE", f"/v1/media/elsewhere.example/{two}")
    assert status == 400

    status, body = await admin.call("POST", "/v1/media/delete?before_ts=1")
    assert body == {"deleted_media": [], "total": 0}
    status, body = await admin.call("POST", "/v1/media/delete?before_ts=99999999999999&size_gt=25")
    assert body == {"deleted_media": [three], "total": 1}
    status, body = await admin.call("POST", "/v1/media/delete")
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")

    status, body = await admin.call("DELETE", "/v1/users/@alice:localhost/media")
    assert body == {"deleted_media": [two], "total": 1}
    status, body = await admin.call("GET", "/v1/users/@alice:localhost/media")
    assert body == {"media": [], "total": 0}


async def test_delete_old_media_keeps_avatars(admin):
    hs = admin.hs
    alice = await hs.register("alice")
    token = alice["access_token"]
    avatar = await upload(hs, token, b"my face")
    await hs.request(
        "PUT",
        f"{V3}/profile/@alice:localhost/avatar_url",
        token=token,
        json={"avatar_url": f"mxc://localhost/{avatar}"},
    )
    status, body = await admin.call("POST", "/v1/media/delete?before_ts=99999999999999")
    assert body == {"deleted_media": [], "total": 0}
    status, body = await admin.call(
        "POST", "/v1/media/delete?before_ts=99999999999999&keep_profiles=false"
    )
    assert body == {"deleted_media": [avatar], "total": 1}
