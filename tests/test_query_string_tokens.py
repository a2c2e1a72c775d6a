"""Access tokens in the query string: accepted by default (spec v1.19 and
earlier require it), refused with `access_token_query_parameter: false` as
spec v1.20 (MSC4127) does (but for appservices' as_tokens, which the
Application Service API still lets come there), and a token given twice is
refused either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from tests.appservice.conftest import AS_TOKEN, registration, write_registrations

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"


async def _upload(hs: Any, token: str) -> str:
    async with hs.http.post(
        f"{hs.url}/_matrix/media/v3/upload",
        data=b"\x89PNG not really",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"},
    ) as resp:
        assert resp.status == 200
        return (await resp.json())["content_uri"].removeprefix("mxc://")


async def _get(hs: Any, path: str, headers: Any = None) -> tuple[int, Any]:
    async with hs.http.get(hs.url + path, headers=headers) as resp:
        body = await resp.read()
        return resp.status, body


async def test_query_tokens_by_default(hs):
    reg = await hs.register("kim")
    token = reg["access_token"]
    status, body = await hs.request("GET", f"{V3}/account/whoami?access_token={token}")
    assert (status, body["user_id"]) == (200, "@kim:localhost")
    # Authenticated media in an <img src> with the token in the query.
    media = await _upload(hs, token)
    status, content = await _get(hs, f"{V1}/media/download/{media}?access_token={token}")
    assert (status, content) == (200, b"\x89PNG not really")


async def test_a_token_given_twice_is_refused(hs):
    token = (await hs.register("kim"))["access_token"]
    other = (await hs.register("lee"))["access_token"]
    for path, headers in (
        # Header and query, even naming the same token (Synapse refuses it too).
        (f"{V3}/account/whoami?access_token={token}", {"Authorization": f"Bearer {token}"}),
        (f"{V3}/account/whoami?access_token={token}&access_token={other}", None),
        (
            f"{V3}/account/whoami",
            CIMultiDict(
                [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {other}")]
            ),
        ),
    ):
        async with hs.http.get(hs.url + path, headers=headers) as resp:
            body = await resp.json()
            assert (resp.status, body["errcode"]) == (401, "M_MISSING_TOKEN"), path


async def test_query_tokens_refused_when_configured(server_factory, tmp_path: Path):
    paths = write_registrations(tmp_path, registration(None))
    hs = await server_factory(
        access_token_query_parameter=False,
        app_service_config_files=paths,
        # Serving new media on the legacy paths too, as for older clients.
        media={"enable_authenticated_media": False},
    )
    token = (await hs.register("kim"))["access_token"]
    status, body = await hs.request("GET", f"{V3}/account/whoami?access_token={token}")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await hs.request("GET", f"{V3}/account/whoami", token=token)
    assert (status, body["user_id"]) == (200, "@kim:localhost")
    media = await _upload(hs, token)
    status, _ = await _get(hs, f"{V1}/media/download/{media}?access_token={token}")
    assert status == 401
    # Older clients' <img> tags use the unauthenticated media path: no token needed.
    status, content = await _get(hs, f"/_matrix/media/v3/download/{media}")
    assert (status, content) == (200, b"\x89PNG not really")
    # An appservice may still put its as_token in the query string.
    status, body = await hs.request("GET", f"{V3}/account/whoami?access_token={AS_TOKEN}")
    assert (status, body["user_id"]) == (200, "@bridgebot:localhost")
    status, body = await hs.request(
        "GET", f"{V3}/account/whoami?access_token={AS_TOKEN}&user_id=%40bridgebot%3Alocalhost"
    )
    assert status == 200
